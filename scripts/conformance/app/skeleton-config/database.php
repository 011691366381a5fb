<?php

// testbench-core's own config/database.php, plus the connection Zeno's docs tell an app to
// use: DB_CONNECTION=zeno runs the tests through the host's pool. (A closure: this file is
// required inside testbench's configuration loader, whose variables it must not touch.)
return (static function (): array {
    $database = require __DIR__ . '/../config-testbench/database.php';
    $database['connections']['zeno'] = ['driver' => 'zeno_proxy', 'connection' => 'default'];
    // Diagnostics only: CONFORMANCE_ZENO_CONFIG='{"schema":"public"}' adds keys to it, to see
    // which failures a setting explains.
    $extra = json_decode((string) getenv('CONFORMANCE_ZENO_CONFIG'), true);
    if (is_array($extra)) {
        $database['connections']['zeno'] += $extra;
    }
    // Diagnostics only: CONFORMANCE_ZENO_DRIVER_AS_BACKEND=pgsql makes the config's driver read
    // as the backend's (see Zeno\Conformance\ConnectionNameProvider).
    if (($backend = (string) getenv('CONFORMANCE_ZENO_DRIVER_AS_BACKEND')) !== '') {
        $database['connections']['zeno']['driver'] = $backend;
    }
    return $database;
})();
