<?php

declare(strict_types=1);

namespace Zeno\Laravel;

use Illuminate\Foundation\Application;

/** Loads a Laravel app from its directory, with the Zeno service provider registered. */
final class AppLoader
{
    public static function load(string $appDir): Application
    {
        $dir = realpath($appDir);
        if ($dir === false || !is_file($dir . '/bootstrap/app.php')) {
            throw new \RuntimeException("not a Laravel app (no bootstrap/app.php): {$appDir}");
        }
        // An app installed with composer has vendor/autoload.php; one that runs on a system
        // Laravel (Debian's php-laravel-framework) loads it from bootstrap/autoload.php.
        $autoload = array_values(array_filter(
            [$dir . '/vendor/autoload.php', $dir . '/bootstrap/autoload.php'],
            'is_file',
        ));
        if ($autoload === []) {
            throw new \RuntimeException("{$dir} has neither vendor/autoload.php (run composer install) nor bootstrap/autoload.php");
        }
        require_once $autoload[0];
        $app = require $dir . '/bootstrap/app.php';
        if (!$app instanceof Application) {
            throw new \RuntimeException("{$dir}/bootstrap/app.php did not return an Illuminate\\Foundation\\Application");
        }
        $app->register(ZenoServiceProvider::class);
        return $app;
    }
}
