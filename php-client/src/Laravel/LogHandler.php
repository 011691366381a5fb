<?php

declare(strict_types=1);

namespace Zeno\Laravel;

use Monolog\Handler\AbstractHandler;
use Zeno\Zeno;

/**
 * A Monolog handler (Monolog 2 and 3) that sends each record to the host, which writes it
 * to its structured log tagged with the worker and the request id.
 */
final class LogHandler extends AbstractHandler
{
    /** @param array<mixed>|\Monolog\LogRecord $record */
    public function handle($record): bool
    {
        if (!$this->isHandling($record)) {
            return false;
        }
        $context = (array) $record['context'];
        foreach ($context as $key => $value) {
            if ($value instanceof \Throwable) {
                $context[$key] = [
                    'class' => get_class($value),
                    'message' => $value->getMessage(),
                    'file' => $value->getFile() . ':' . $value->getLine(),
                ];
            } elseif (is_object($value) && !$value instanceof \JsonSerializable) {
                $context[$key] = method_exists($value, '__toString') ? (string) $value : get_class($value);
            }
        }
        if ((array) $record['extra'] !== []) {
            $context['extra'] = (array) $record['extra'];
        }
        $context['channel'] = (string) $record['channel'];
        Zeno::log(strtolower((string) $record['level_name']), (string) $record['message'], $context);
        return $this->bubble === false;
    }
}
