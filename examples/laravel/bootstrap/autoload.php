<?php

declare(strict_types=1);

// Class loading for the app. With a composer install, vendor/autoload.php does it all. Without
// one (Debian's php-laravel-framework, as in this repository's tests), the framework comes
// from PHP's include_path and the app's own namespaces are mapped here.
if (is_file(__DIR__ . '/../vendor/autoload.php')) {
    return require __DIR__ . '/../vendor/autoload.php';
}

$framework = stream_resolve_include_path('Illuminate/autoload.php');
if ($framework === false) {
    fwrite(STDERR, "Laravel is not installed: run composer install, or apt install php-laravel-framework\n");
    exit(1);
}
require_once $framework;

spl_autoload_register(static function (string $class): void {
    $roots = [
        'App\\' => __DIR__ . '/../app/',
        'Database\\Seeders\\' => __DIR__ . '/../database/seeders/',
        'Database\\Factories\\' => __DIR__ . '/../database/factories/',
    ];
    foreach ($roots as $prefix => $dir) {
        if (strncmp($class, $prefix, strlen($prefix)) === 0) {
            $file = $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
            if (is_file($file)) {
                require $file;
            }
            return;
        }
    }
});
