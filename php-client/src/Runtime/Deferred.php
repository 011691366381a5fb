<?php

declare(strict_types=1);

namespace Zeno\Runtime;

/**
 * Work a request asked to run after its response has gone to the client (`\Zeno::defer`,
 * Laravel's terminate): run in order; one that throws is reported and the rest still run.
 */
final class Deferred
{
    /** @var list<callable> */
    private array $callbacks = [];

    public function add(callable $callback): void
    {
        $this->callbacks[] = $callback;
    }

    public function isEmpty(): bool
    {
        return $this->callbacks === [];
    }

    /**
     * Runs every callback, including ones added while running; `$onError` gets what one threw.
     *
     * @param callable(\Throwable): void $onError
     */
    public function run(callable $onError): void
    {
        try {
            while (($callback = array_shift($this->callbacks)) !== null) {
                try {
                    $callback();
                } catch (\Throwable $e) {
                    $onError($e);
                }
            }
        } finally {
            $this->callbacks = [];
        }
    }
}
