<?php

declare(strict_types=1);

namespace Zeno\Laravel;

use Illuminate\Support\ServiceProvider;
use Monolog\Logger;
use Zeno\Laravel\Database\ProxyConnector;

/**
 * Adds the `zeno_proxy` database driver and the `zeno` log driver. Registered by the host
 * for every app it runs, and by package auto-discovery for composer installs.
 */
final class ZenoServiceProvider extends ServiceProvider
{
    /** @var list<string> the zeno_proxy connections whose config names the backend's driver */
    private array $proxied = [];

    public function register(): void
    {
        $connector = new ProxyConnector();
        $connect = static fn (array $config, string $name) => $connector->connect($config, $name);
        $extendDb = function ($db) use ($connect): void {
            $db->extend('zeno_proxy', $connect);
            // Connections whose config now names the backend's driver are still built here:
            // Laravel looks up an extension by connection name before the driver's.
            foreach ($this->proxied as $name) {
                $db->extend($name, $connect);
            }
        };
        $rename = function () use ($connector, $connect): void {
            $this->proxied = $this->useBackendDriverNames($connector);
            if ($this->app->resolved('db')) {
                foreach ($this->proxied as $name) {
                    $this->app['db']->extend($name, $connect);
                }
            }
        };
        // The host registers this provider before the app loads its config.
        if ($this->app->bound('config')) {
            $rename();
        } else {
            $this->app->afterBootstrapping('Illuminate\Foundation\Bootstrap\LoadConfiguration', $rename);
        }
        $extendLog = static function ($log): void {
            // Not static: LogManager binds the creator to itself.
            $log->extend('zeno', function ($app, array $config): Logger {
                $level = Logger::toMonologLevel($config['level'] ?? 'debug');
                return new Logger((string) ($config['name'] ?? 'zeno'), [new LogHandler($level, (bool) ($config['bubble'] ?? true))]);
            });
        };
        $this->app->resolved('db') ? $extendDb($this->app['db']) : $this->app->resolving('db', $extendDb);
        $this->app->resolved('log') ? $extendLog($this->app['log']) : $this->app->resolving('log', $extendLog);
        $this->registerConcurrency();
    }

    /**
     * Every `zeno_proxy` connection's config is made to name the backend's driver (`pgsql`,
     * `mysql`, `mariadb`, `sqlite`), as the native config would: code that reads
     * `config('database.connections.X.driver')` — Laravel's own tests, packages choosing SQL
     * by it — then takes the native path. `zeno_proxy => true` marks them. Outside the host
     * (no database to ask) the config stays as written.
     *
     * @return list<string> the connections rewritten
     */
    private function useBackendDriverNames(ProxyConnector $connector): array
    {
        if (!\Zeno\Zeno::running()) {
            return [];
        }
        $config = $this->app['config'];
        $proxied = [];
        foreach ((array) $config->get('database.connections', []) as $name => $connection) {
            if (!is_array($connection) || ($connection['driver'] ?? null) !== 'zeno_proxy') {
                continue;
            }
            try {
                $driver = $connector->driverFor($connection);
            } catch (\Throwable) {
                continue; // the connection is unknown to the host: connecting says so clearly
            }
            $config->set("database.connections.{$name}.driver", $driver);
            $config->set("database.connections.{$name}.zeno_proxy", true);
            $proxied[] = (string) $name;
        }
        return $proxied;
    }

    /**
     * Laravel 11.24+: `Concurrency` runs on the host's task pool — the `zeno` driver, and
     * `process` (Laravel's default) replaced by it, since its `php artisan` children cannot
     * reach the host's database pool. Outside the host, `process` stays Laravel's own.
     */
    private function registerConcurrency(): void
    {
        $manager = 'Illuminate\Concurrency\ConcurrencyManager';
        if (!class_exists($manager) || !interface_exists('Illuminate\Contracts\Concurrency\Driver')) {
            return;
        }
        $extend = static function ($concurrency): void {
            // Not static: the manager binds creators to itself (Laravel 11 cannot bind a
            // static closure).
            $concurrency->extend('zeno', fn () => new ConcurrencyDriver());
            if (\Zeno\Zeno::running()) {
                $concurrency->extend('process', fn () => new ConcurrencyDriver());
            }
        };
        // Laravel's ConcurrencyServiceProvider is deferred: extend the manager when it is made.
        $this->app->resolved($manager) ? $extend($this->app[$manager]) : $this->app->afterResolving($manager, $extend);
    }

    public function boot(): void
    {
        // LOG_CHANNEL=zeno works even when config/logging.php does not define the channel.
        $config = $this->app['config'];
        if (!$config->has('logging.channels.zeno')) {
            $config->set('logging.channels.zeno', ['driver' => 'zeno', 'level' => 'debug']);
        }
    }
}
