<?php

declare(strict_types=1);

// Debian's php-laravel-framework from PHP's include_path, and this harness's own classes.
require_once 'Illuminate/autoload.php';

spl_autoload_register(static function (string $class): void {
    $prefix = 'Zeno\\Conformance\\';
    if (strncmp($class, $prefix, strlen($prefix)) === 0) {
        $file = __DIR__ . '/../src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
