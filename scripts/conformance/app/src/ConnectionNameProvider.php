<?php

declare(strict_types=1);

namespace Zeno\Conformance;

use Illuminate\Support\ServiceProvider;
use Zeno\Laravel\Database\ProxyConnector;

/**
 * Diagnostics only (CONFORMANCE_ZENO_DRIVER_AS_BACKEND): the `zeno` connection's config says
 * `'driver' => 'pgsql'` (or mysql, sqlite), as tests that read the config's driver expect,
 * and this provider still builds it with zeno_proxy's connector, by the connection's name
 * (Laravel's DatabaseManager looks up extensions by connection name before driver name).
 */
final class ConnectionNameProvider extends ServiceProvider
{
    public function register(): void
    {
        $extend = static function ($db): void {
            $connector = new ProxyConnector();
            $db->extend('zeno', static fn (array $config, string $name) => $connector->connect($config, $name));
        };
        $this->app->resolved('db') ? $extend($this->app['db']) : $this->app->resolving('db', $extend);
    }
}
