<?php

return [
    // `zeno` sends records to the host, which writes them to its structured log with the
    // request id. Under PHP-FPM use `stderr` or `single`.
    'default' => env('LOG_CHANNEL', 'zeno'),
    'channels' => [
        'zeno' => ['driver' => 'zeno', 'level' => env('LOG_LEVEL', 'debug')],
        'stderr' => [
            'driver' => 'monolog',
            'handler' => Monolog\Handler\StreamHandler::class,
            'with' => ['stream' => 'php://stderr'],
            'level' => env('LOG_LEVEL', 'debug'),
        ],
        'single' => ['driver' => 'single', 'path' => storage_path('logs/laravel.log'), 'level' => 'debug'],
    ],
];
