<?php

declare(strict_types=1);

// The peer in `just bench`: the same examples/hello handler run the PHP-FPM way, booted on
// every request. Only the bench uses it.

require __DIR__ . '/../php-client/src/autoload.php';

$handler = require __DIR__ . '/../examples/hello/index.php';
$request = new Zeno\Request(
    'fpm',
    'http',
    [
        'method' => $_SERVER['REQUEST_METHOD'],
        'uri' => $_SERVER['REQUEST_URI'],
        'path' => parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) ?: '/',
        'query' => $_SERVER['QUERY_STRING'] ?? '',
        'headers' => [],
    ],
    (string) file_get_contents('php://input'),
    $_GET,
    $_POST,
    $_COOKIE,
    $_FILES,
    [],
);
$result = $handler($request);
if ($result instanceof Zeno\Response) {
    http_response_code($result->status());
    echo $result->body();
} elseif (is_array($result)) {
    header('Content-Type: application/json');
    echo json_encode($result);
} elseif ($result !== null) {
    echo $result;
}
