<?php

declare(strict_types=1);

namespace Zeno\Laravel;

use Illuminate\Container\Container;
use Illuminate\Foundation\Application;
use Illuminate\Support\Facades\Facade;
use Zeno\Laravel\Database\ZenoPdo;

/**
 * What one request may change in a booted app and the next must not see: configuration,
 * container instances and scoped bindings (Laravel 11+'s Context, deferred callbacks and
 * `#[Scoped]` classes among them), auth, session, queued cookies, locale, the database
 * connections' sticky and query-log state, view shared data, terminating callbacks, the log's
 * context and shared context, the translator's parsed keys, Vite's preloads, `Once` and
 * `Number`'s locale. Captured after boot, restored after every request.
 */
final class StateReset
{
    /** Services resolved at boot so they are built once, not once per request. */
    private const WARM = [
        'auth', 'cache', 'cache.store', 'config', 'cookie', 'db', 'db.factory', 'encrypter', 'files',
        'hash', 'log', 'router', 'routes', 'session', 'translator', 'url', 'view', 'events', 'validator',
    ];

    /**
     * @param array<string, mixed> $config
     * @param array<string, true> $instances
     * @param array<string, mixed> $viewShared
     */
    private function __construct(
        private array $config,
        private array $instances,
        private string $locale,
        private array $viewShared,
        private int $terminating,
        private ?string $numberLocale,
        private int $requests = 0,
    ) {
    }

    public static function capture(Application $app): self
    {
        // Services such as the URL generator need a request to be built; until the first
        // real one arrives they get a placeholder, which every request then replaces.
        if (!$app->bound('request')) {
            $app->instance('request', \Illuminate\Http\Request::create('http://localhost/'));
        }
        foreach (self::WARM as $service) {
            if ($app->bound($service)) {
                try {
                    $app->make($service);
                } catch (\Throwable) {
                    // A service the app cannot build (a cache store with no server) is built
                    // on first use instead, as under PHP-FPM.
                }
            }
        }
        return new self(
            $app['config']->all(),
            array_fill_keys(self::instanceKeys($app), true),
            $app->getLocale(),
            $app->resolved('view') ? $app['view']->getShared() : [],
            count(self::property($app, 'terminatingCallbacks') ?? []),
            method_exists('Illuminate\\Support\\Number', 'defaultLocale') ? \Illuminate\Support\Number::defaultLocale() : null,
        );
    }

    /** Per request, after terminate(). */
    public function afterRequest(Application $app): void
    {
        $config = $app['config'];
        // Unchanged, the repository still holds the very array captured at boot, and this
        // comparison is a pointer check.
        if ($config->all() !== $this->config) {
            foreach (array_keys($config->all()) as $key) {
                if (!array_key_exists($key, $this->config)) {
                    $config->offsetUnset($key);
                }
            }
            $config->set($this->config);
        }

        if ($app->resolved('db')) {
            foreach ($app['db']->getConnections() as $connection) {
                if ($connection->transactionLevel() > 0) {
                    // The host rolls the transaction back when the request ends; the
                    // connection object must forget it too.
                    self::setProperty($connection, 'transactions', 0);
                    foreach ([$connection->getRawPdo(), $connection->getRawReadPdo()] as $pdo) {
                        if ($pdo instanceof ZenoPdo) {
                            $pdo->forgetTransaction();
                        }
                    }
                }
                if (method_exists($connection, 'forgetRecordModificationState')) {
                    $connection->forgetRecordModificationState();
                }
                $connection->flushQueryLog();
                $connection->disableQueryLog();
                if (method_exists($connection, 'resetTotalQueryDuration')) {
                    $connection->resetTotalQueryDuration();
                }
                if (method_exists($connection, 'allowQueryDurationHandlersToRunAgain')) {
                    $connection->allowQueryDurationHandlersToRunAgain();
                }
            }
        }
        if ($app->resolved('auth')) {
            $app['auth']->forgetGuards();
        }
        if ($app->resolved('cookie')) {
            $app['cookie']->flushQueuedCookies();
        }
        if ($app->resolved('session')) {
            $app['session']->forgetDrivers();
            $app->forgetInstance('session.store');
        }
        if ($app->getLocale() !== $this->locale) {
            $app->setLocale($this->locale);
        }
        if ($app->resolved('view')) {
            $view = $app['view'];
            $view->flushState();
            self::setProperty($view, 'shared', $this->viewShared);
        }
        if ($app->resolved('log')) {
            $logger = $app['log'];
            if (method_exists($logger, 'withoutContext')) {
                $logger->withoutContext();
            }
            // Log::shareContext() (Laravel 11+) reaches every channel, made now or later.
            if (method_exists($logger, 'flushSharedContext')) {
                $logger->flushSharedContext();
            }
        }
        if ($app->resolved('translator') && method_exists($app['translator'], 'flushParsedKeys')) {
            // Parsed keys are cached per translator; a request may have added thousands.
            $app['translator']->flushParsedKeys();
        }
        $vite = 'Illuminate\\Foundation\\Vite';
        if (class_exists($vite, false) && $app->resolved($vite) && method_exists($app[$vite], 'flush')) {
            // Preloaded assets and fonts collected for one page (12.5+).
            $app[$vite]->flush();
        }
        $number = 'Illuminate\\Support\\Number';
        if ($this->numberLocale !== null && $number::defaultLocale() !== $this->numberLocale) {
            // Number::useLocale() sets a static that outlives the request.
            $number::useLocale($this->numberLocale);
        }
        if (method_exists($app, 'forgetScopedInstances')) {
            $app->forgetScopedInstances();
        }
        // Instances first made during the request (singletons resolved late, values the app
        // stored with instance()) go; the next request builds its own.
        foreach (self::instanceKeys($app) as $key) {
            if (!isset($this->instances[$key])) {
                $app->forgetInstance($key);
            }
        }
        $callbacks = self::property($app, 'terminatingCallbacks');
        if (is_array($callbacks) && count($callbacks) > $this->terminating) {
            self::setProperty($app, 'terminatingCallbacks', array_slice($callbacks, 0, $this->terminating));
        }
        if (class_exists(\Illuminate\Support\Str::class) && method_exists(\Illuminate\Support\Str::class, 'flushCache')) {
            \Illuminate\Support\Str::flushCache();
        }
        if (class_exists(\Illuminate\Support\Once::class)) {
            \Illuminate\Support\Once::flush();
        }
        Facade::clearResolvedInstances();
        if (++$this->requests % 100 === 0) {
            gc_collect_cycles();
        }
    }

    /** @return list<string> */
    private static function instanceKeys(Container $app): array
    {
        return array_keys((array) self::property($app, 'instances'));
    }

    private static function property(object $object, string $name): mixed
    {
        $read = function () use ($name) {
            return $this->{$name} ?? null;
        };
        return \Closure::bind($read, $object, $object::class)();
    }

    private static function setProperty(object $object, string $name, mixed $value): void
    {
        $write = function () use ($name, $value): void {
            $this->{$name} = $value;
        };
        \Closure::bind($write, $object, $object::class)();
    }
}
