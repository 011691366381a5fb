<?php

declare(strict_types=1);

namespace Zeno\Laravel;

use Closure;
use Illuminate\Contracts\Concurrency\Driver;
use Illuminate\Support\Arr;
use Illuminate\Support\Defer\DeferredCallback;
use Zeno\Runtime\Tasks;

use function Illuminate\Support\defer;

/**
 * Laravel's `Concurrency` on the host's task pool: `run()` sends the closures to warm task
 * workers (booted once, like the HTTP workers) instead of starting `php artisan` per task, and
 * `defer()` queues them there after the response. Registered as the `zeno` driver and in
 * place of `process`, whose child processes could not reach the host's database pool.
 * Laravel 11.24 to 13.
 */
final class ConcurrencyDriver implements Driver
{
    /**
     * Runs the tasks at once and returns their results under the same keys.
     *
     * @param Closure|array<array-key, Closure> $tasks
     * @param \DateInterval|int|null $timeout seconds (13.x); the host's `tasks.exec_timeout` when null
     * @return array<array-key, mixed>
     */
    public function run(Closure|array $tasks, $timeout = null): array
    {
        return Tasks::run(Arr::wrap($tasks), self::seconds($timeout));
    }

    /**
     * Queues the tasks on the task pool once the response has gone (Laravel's `defer()`, so
     * only for a successful response unless marked `always()`).
     *
     * @param Closure|array<array-key, Closure> $tasks
     */
    public function defer(Closure|array $tasks): DeferredCallback
    {
        $tasks = Arr::wrap($tasks);
        return defer(static fn () => Tasks::defer($tasks));
    }

    private static function seconds(mixed $timeout): ?float
    {
        if ($timeout === null) {
            return null;
        }
        if ($timeout instanceof \DateInterval) {
            $now = new \DateTimeImmutable('@0');
            return (float) $now->add($timeout)->getTimestamp();
        }
        return (float) $timeout;
    }
}
