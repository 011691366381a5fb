<?php

declare(strict_types=1);

// Zeno's own class loader, so the runtime needs no composer install. Composer users get the
// same mapping from composer.json's PSR-4 section instead.
spl_autoload_register(static function (string $class): void {
    if (strncmp($class, 'Zeno\\', 5) !== 0) {
        return;
    }
    $file = __DIR__ . '/' . str_replace('\\', '/', substr($class, 5)) . '.php';
    if (is_file($file)) {
        require $file;
    }
});

if (!class_exists('Zeno', false)) {
    class_alias(\Zeno\Zeno::class, 'Zeno');
}
