<?php

declare(strict_types=1);

namespace Zeno\Runtime;

/**
 * The worker's end of the protocol: one JSON object per line, read from stdin and written
 * to stdout. Writes go straight to the file descriptor, past PHP's output layer, so nothing
 * the application echoes can land between two protocol lines.
 */
final class Channel
{
    private const JSON_OUT = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE
        | JSON_INVALID_UTF8_SUBSTITUTE | JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR;

    /** @param resource $in @param resource $out */
    public function __construct(private $in, private $out)
    {
    }

    /** @param array<string, mixed> $message */
    public function send(array $message): void
    {
        $this->write(json_encode($message, self::JSON_OUT) . "\n");
    }

    /** A `chunk` of request `$id`'s streamed body: its header line, then the raw bytes. */
    public function sendChunk(string $id, string $bytes): void
    {
        $this->write(json_encode(['type' => 'chunk', 'id' => $id, 'len' => strlen($bytes)], self::JSON_OUT) . "\n" . $bytes);
    }

    private function write(string $line): void
    {
        $length = strlen($line);
        $written = 0;
        while ($written < $length) {
            $n = fwrite($this->out, substr($line, $written));
            if ($n === false || $n === 0) {
                throw new \RuntimeException('the host closed the protocol pipe');
            }
            $written += $n;
        }
        fflush($this->out);
    }

    /**
     * The next message from the host, or null when the host closed stdin.
     *
     * @return array<string, mixed>|null
     */
    public function receive(): ?array
    {
        $line = fgets($this->in);
        if ($line === false) {
            return null;
        }
        $message = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
        if (!is_array($message) || !isset($message['type'])) {
            throw new \UnexpectedValueException('the host sent a line that is not a message');
        }
        return $message;
    }
}
