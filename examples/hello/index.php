<?php

declare(strict_types=1);

// examples/hello: a plain Zeno handler. The file runs once per worker (boot); the function
// it returns runs once per request.

use Zeno\Request;
use Zeno\Response;

$bootedAt = microtime(true);

return function (Request $request) use ($bootedAt) {
    switch ($request->path()) {
        case '/':
            // A string becomes an HTML response.
            return 'Hello, ' . htmlspecialchars((string) ($request->query('name') ?? 'world')) . "!\n";

        case '/form':
            // Urlencoded and multipart forms fill $_POST as under PHP-FPM.
            return ['post' => $_POST, 'method' => $_SERVER['REQUEST_METHOD']];

        case '/json':
            // A JSON body, read through php://input like any PHP app would.
            $data = json_decode(file_get_contents('php://input') ?: 'null', true);
            return Response::json(['received' => $data], 201);

        case '/upload':
            $file = $_FILES['file'] ?? null;
            if ($file === null) {
                return new Response("no file\n", 400);
            }
            return [
                'name' => $file['name'],
                'type' => $file['type'],
                'size' => $file['size'],
                'sha1' => sha1_file($file['tmp_name']),
            ];

        case '/scope':
            // The host's per-request scope, three ways.
            \Zeno::log('info', 'scope requested', ['request_id' => \Zeno::scope('request_id')]);
            return [
                'scope' => \Zeno::scope(),
                'request_id_header' => $request->header('x-zeno-request-id'),
            ];

        case '/echo':
            // echo, header() and http_response_code() work as under PHP-FPM.
            header('X-Hello: world');
            setcookie('visited', '1');
            http_response_code(202);
            echo "echoed\n";
            return null;

        case '/info':
            return [
                'pid' => getmypid(),
                'booted_at' => $bootedAt,
                'php' => PHP_VERSION,
                'sapi' => PHP_SAPI,
            ];

        default:
            return new Response("Not Found\n", 404, ['content-type' => 'text/plain']);
    }
};
