<?php

// testbench-core's own config/app.php; inside a Zeno worker, with Zeno's service provider
// (the zeno_proxy driver), which the host registers for the apps it boots itself.
return (static function (): array {
    $app = require __DIR__ . '/../config-testbench/app.php';
    if (class_exists(\Zeno\Laravel\ZenoServiceProvider::class)) {
        $app['providers'][] = \Zeno\Laravel\ZenoServiceProvider::class;
        if ((string) getenv('CONFORMANCE_ZENO_DRIVER_AS_BACKEND') !== '') {
            $app['providers'][] = \Zeno\Conformance\ConnectionNameProvider::class;
        }
    }
    return $app;
})();
