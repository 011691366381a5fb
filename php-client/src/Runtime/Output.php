<?php

declare(strict_types=1);

namespace Zeno\Runtime;

/**
 * What a request echoes: an output buffer opened when it starts and collected at its end,
 * including buffers the application opened and left open.
 */
final class Output
{
    private int $level = 0;

    public function start(): void
    {
        ob_start();
        $this->level = ob_get_level();
    }

    /** Everything echoed since start(); '' when nothing was started. */
    public function collect(): string
    {
        if ($this->level === 0) {
            return '';
        }
        while (ob_get_level() > $this->level) {
            ob_end_flush();
        }
        $output = ob_get_level() === $this->level ? (string) ob_get_clean() : '';
        $this->level = 0;
        return $output;
    }
}
