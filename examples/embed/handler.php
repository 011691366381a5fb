<?php

declare(strict_types=1);

// The PHP side of examples/embed: answers tasks dispatched by the Rust program, calling the
// host function `greet` that the program registered.

return function (Zeno\Request $request): array {
    $task = $request->task();
    $greeting = \Zeno::call('greet', ['name' => $task['name'] ?? 'nobody']);
    \Zeno::log('info', 'greeted', ['user_id' => \Zeno::scope('user_id')]);
    return [
        'greeting' => $greeting['success'] ? $greeting['data'] : null,
        'user_id' => \Zeno::scope('user_id'),
        'request_id' => \Zeno::scope('request_id'),
        'pid' => getmypid(),
    ];
};
