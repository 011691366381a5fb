<?php

declare(strict_types=1);

namespace Zeno\Laravel;

use Illuminate\Foundation\Application;
use Illuminate\Log\Context\Repository as Context;
use Illuminate\Support\Defer\DeferredCallbackCollection;
use Zeno\Runtime\Tasks;

/**
 * How a Laravel worker runs a task closure: through the container (so its parameters are
 * injected, as Laravel's process driver does), with the caller's Context, then the same
 * reset as after a request, so a task leaves nothing behind for the next.
 */
final class TaskInvoker
{
    public static function install(Application $app, ?StateReset $reset): void
    {
        Tasks::useInvoker(
            static function (\Closure $task, array $payload) use ($app, $reset): mixed {
                // An empty payload is a task run inline by its caller: the caller's own
                // request goes on afterwards, so nothing is hydrated or reset.
                $own = $payload !== [];
                if ($own && is_array($payload['context'] ?? null) && class_exists(Context::class)) {
                    $app->make(Context::class)->hydrate($payload['context']);
                }
                try {
                    $result = $app->call($task);
                    if ($own && class_exists(DeferredCallbackCollection::class) && $app->bound(DeferredCallbackCollection::class)) {
                        // Work the task deferred runs when it ends, as after an artisan command.
                        $app->make(DeferredCallbackCollection::class)->invoke();
                    }
                    return $result;
                } finally {
                    if ($own) {
                        $reset?->afterRequest($app);
                    }
                }
            },
            static function () use ($app): ?array {
                if (!class_exists(Context::class) || !$app->bound(Context::class)) {
                    return null;
                }
                $context = $app->make(Context::class)->dehydrate();
                return is_array($context) ? $context : null;
            },
        );
    }
}
