<?php

declare(strict_types=1);

namespace Zeno\Runtime;

/**
 * What a request echoes: an output buffer opened when it starts and collected at its end,
 * including buffers the application opened and left open.
 *
 * Small responses stay in the buffer and travel as one message. When the buffer passes
 * {@see Output::CHUNK} bytes, or the application calls `ob_flush()` (as Laravel's and
 * Symfony's streamed responses do), what it holds goes to `$flush` at once: the response
 * becomes a stream.
 */
final class Output
{
    /** Bytes a request may hold before its response is streamed. */
    public const CHUNK = 262144;

    private int $level = 0;
    private bool $collecting = false;
    /** @var (\Closure(string): void)|null */
    private ?\Closure $flush = null;

    /** @param \Closure(string): void $flush receives output that must leave now */
    public function start(\Closure $flush): void
    {
        $this->flush = $flush;
        ob_start(function (string $buffer, int $phase): string {
            if ($this->collecting || $buffer === '' && ($phase & PHP_OUTPUT_HANDLER_FLUSH) === 0) {
                return '';
            }
            if ($this->flush !== null) {
                ($this->flush)($buffer);
            }
            return '';
        }, self::CHUNK);
        $this->level = ob_get_level();
    }

    /** Everything echoed since start() and not yet flushed; '' when nothing was started. */
    public function collect(): string
    {
        if ($this->level === 0) {
            return '';
        }
        while (ob_get_level() > $this->level) {
            ob_end_flush();
        }
        $this->collecting = true;
        try {
            $output = ob_get_level() === $this->level ? (string) ob_get_clean() : '';
        } finally {
            $this->collecting = false;
            $this->level = 0;
            $this->flush = null;
        }
        return $output;
    }
}
