<?php

declare(strict_types=1);

namespace Zeno\Runtime;

/**
 * Replaces the `php://` stream wrapper so that `php://input` yields the current request's
 * body, as it does under PHP-FPM. Every other `php://` path (`memory`, `temp`, `output`,
 * `stdout`, `filter`, …) is opened with PHP's own wrapper and used through this proxy.
 */
final class PhpStream
{
    private static string $input = '';
    private static bool $installed = false;

    /** @var resource|null set by PHP for stream context */
    public $context;

    /** @var resource|null */
    private $inner;
    private bool $isInput = false;
    private int $position = 0;

    public static function install(): void
    {
        if (self::$installed) {
            return;
        }
        stream_wrapper_unregister('php');
        stream_wrapper_register('php', self::class);
        self::$installed = true;
    }

    public static function setInput(string $body): void
    {
        self::$input = $body;
    }

    public function stream_open(string $path, string $mode, int $options, ?string &$openedPath): bool
    {
        if (strtolower(substr($path, 0, 11)) === 'php://input') {
            $this->isInput = true;
            return true;
        }
        stream_wrapper_restore('php');
        try {
            $inner = $this->context !== null ? @fopen($path, $mode, false, $this->context) : @fopen($path, $mode);
        } finally {
            stream_wrapper_unregister('php');
            stream_wrapper_register('php', self::class);
        }
        if ($inner === false) {
            return false;
        }
        $this->inner = $inner;
        return true;
    }

    public function stream_read(int $count): string|false
    {
        if ($this->isInput) {
            $chunk = substr(self::$input, $this->position, $count);
            $this->position += strlen($chunk);
            return $chunk;
        }
        return fread($this->inner, $count);
    }

    public function stream_write(string $data): int
    {
        if ($this->isInput) {
            return 0;
        }
        $n = fwrite($this->inner, $data);
        return $n === false ? 0 : $n;
    }

    public function stream_eof(): bool
    {
        return $this->isInput ? $this->position >= strlen(self::$input) : feof($this->inner);
    }

    public function stream_tell(): int
    {
        return $this->isInput ? $this->position : (int) ftell($this->inner);
    }

    public function stream_seek(int $offset, int $whence): bool
    {
        if (!$this->isInput) {
            return fseek($this->inner, $offset, $whence) === 0;
        }
        $length = strlen(self::$input);
        $target = match ($whence) {
            SEEK_SET => $offset,
            SEEK_CUR => $this->position + $offset,
            SEEK_END => $length + $offset,
            default => -1,
        };
        if ($target < 0) {
            return false;
        }
        $this->position = $target;
        return true;
    }

    public function stream_flush(): bool
    {
        return $this->isInput || fflush($this->inner);
    }

    public function stream_truncate(int $size): bool
    {
        return !$this->isInput && ftruncate($this->inner, $size);
    }

    public function stream_lock(int $operation): bool
    {
        return !$this->isInput && flock($this->inner, $operation);
    }

    /** @return array<int|string, int>|false */
    public function stream_stat(): array|false
    {
        if ($this->isInput) {
            return ['size' => strlen(self::$input), 'mode' => 0100444];
        }
        return fstat($this->inner);
    }

    /** @return resource|false */
    public function stream_cast(int $castAs)
    {
        return $this->isInput ? false : $this->inner;
    }

    public function stream_set_option(int $option, int $arg1, ?int $arg2): bool
    {
        if ($this->isInput) {
            return false;
        }
        return match ($option) {
            STREAM_OPTION_BLOCKING => stream_set_blocking($this->inner, (bool) $arg1),
            STREAM_OPTION_READ_TIMEOUT => stream_set_timeout($this->inner, $arg1, (int) $arg2),
            STREAM_OPTION_WRITE_BUFFER => stream_set_write_buffer($this->inner, (int) $arg2) === 0,
            default => false,
        };
    }

    public function stream_close(): void
    {
        if ($this->inner !== null) {
            fclose($this->inner);
            $this->inner = null;
        }
    }
}
