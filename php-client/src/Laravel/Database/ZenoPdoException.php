<?php

declare(strict_types=1);

namespace Zeno\Laravel\Database;

/**
 * A database error from the host, shaped as the PDOException the native driver throws:
 * the SQLSTATE as its code, `errorInfo` = [SQLSTATE, driver code, message], and PDO's message
 * layout, so Laravel's QueryException, unique-violation, deadlock and lost-connection
 * detection all see what they expect.
 */
final class ZenoPdoException extends \PDOException
{
    /** SQLSTATE class/code descriptions as PDO prints them. */
    private const DESCRIPTIONS = [
        '08006' => 'Connection failure',
        '08001' => 'Client unable to establish connection',
        '22001' => 'String data, right truncated',
        '22003' => 'Numeric value out of range',
        '22007' => 'Invalid datetime format',
        '22P02' => 'Invalid text representation',
        '23000' => 'Integrity constraint violation',
        '23502' => 'Not null violation',
        '23503' => 'Foreign key violation',
        '23505' => 'Unique violation',
        '23514' => 'Check violation',
        '25P02' => 'In failed sql transaction',
        '40001' => 'Serialization failure',
        '40P01' => 'Deadlock detected',
        '42000' => 'Syntax error or access violation',
        '42601' => 'Syntax error',
        '42703' => 'Undefined column',
        '42883' => 'Undefined function',
        '42P01' => 'Undefined table',
        '42P07' => 'Duplicate table',
        '42S01' => 'Base table or view already exists',
        '42S02' => 'Base table or view not found',
        '42S22' => 'Column not found',
        '57014' => 'Query canceled',
        'HY000' => 'General error',
    ];

    /** @param array<string, mixed> $info the host's `error_info` */
    public static function fromHost(string $driver, string $message, array $info): self
    {
        $kind = (string) ($info['kind'] ?? 'db');
        $sqlstate = (string) ($info['sqlstate'] ?? '');
        $driverCode = $info['driver_code'] ?? null;
        if ($sqlstate === '') {
            // Not the database's own error: the pool (exhausted, database unreachable) or a
            // bad call. HY000 as PDO uses for errors without a SQLSTATE.
            $sqlstate = 'HY000';
            $message = "zeno {$kind}: {$message}";
        }
        $code = match ($driver) {
            // libpq reports every statement error as PGRES_FATAL_ERROR (7).
            'pgsql' => 7,
            default => is_numeric($driverCode) ? (int) $driverCode : null,
        };
        $text = $message;
        if ($driver === 'pgsql' && $kind === 'db') {
            // libpq's layout, which pdo_pgsql passes on and Laravel parses (a unique
            // violation's columns come from the DETAIL line).
            $text = "ERROR:  {$message}";
            foreach (['detail' => 'DETAIL', 'hint' => 'HINT'] as $field => $label) {
                if (isset($info[$field]) && is_string($info[$field]) && $info[$field] !== '') {
                    $text .= "\n{$label}:  {$info[$field]}";
                }
            }
        }
        $description = self::DESCRIPTIONS[$sqlstate] ?? self::DESCRIPTIONS[substr($sqlstate, 0, 2) . '000'] ?? 'General error';
        $exception = new self(sprintf(
            'SQLSTATE[%s]: %s: %s%s',
            $sqlstate,
            $description,
            $code === null ? '' : $code . ' ',
            $text,
        ));
        $exception->code = $sqlstate;
        $exception->errorInfo = [$sqlstate, $code, $text];
        return $exception;
    }
}
