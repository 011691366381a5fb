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
    public function register(): void
    {
        $connector = new ProxyConnector();
        $extendDb = static function ($db) use ($connector): void {
            $db->extend('zeno_proxy', static fn (array $config, string $name) => $connector->connect($config, $name));
        };
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
