<?php

declare(strict_types=1);

namespace Zeno\Db;

/**
 * Turns a `db_query` result into the rows PDO would have fetched on this PHP: binary
 * columns decoded from base64 (on PostgreSQL, as the stream pdo_pgsql gives for bytea)
 * and, on PostgreSQL before PHP 8.4 (where pdo_pgsql still fetches float4/float8 as
 * strings), floats given back as PostgreSQL prints them.
 */
final class Rows
{
    /** How the host sends the floats JSON cannot carry. */
    private const SPECIAL_FLOATS = ['Infinity' => INF, '-Infinity' => -INF, 'NaN' => NAN];

    /**
     * @param array{rows: list<array<string, mixed>>, columns: list<array<string, mixed>>} $data
     * @param string $driver the backend: "pgsql", "mysql" or "sqlite"
     * @return list<array<string, mixed>>
     */
    public static function asPdo(array $data, string $driver): array
    {
        $binary = [];
        $floatText = [];
        $floats = [];
        foreach ($data['columns'] as $column) {
            $name = (string) $column['name'];
            if (!empty($column['binary'])) {
                $binary[] = $name;
            }
            if ($driver === 'pgsql' && PHP_VERSION_ID < 80400 && in_array($column['type'], ['FLOAT4', 'FLOAT8'], true)) {
                $floatText[] = $name;
            } elseif (in_array($column['type'], ['FLOAT4', 'FLOAT8', 'FLOAT', 'DOUBLE', 'REAL'], true)) {
                // JSON has no infinities or NaN: the host sends PostgreSQL's names for them.
                $floats[] = $name;
            }
        }
        if ($binary === [] && $floatText === [] && $floats === []) {
            return $data['rows'];
        }
        $rows = $data['rows'];
        foreach ($rows as &$row) {
            foreach ($binary as $name) {
                if (is_string($row[$name] ?? null)) {
                    $bytes = (string) base64_decode($row[$name], true);
                    $row[$name] = $driver === 'pgsql' ? self::stream($bytes) : $bytes;
                }
            }
            foreach ($floats as $name) {
                $value = $row[$name] ?? null;
                if (is_string($value) && isset(self::SPECIAL_FLOATS[$value])) {
                    $row[$name] = self::SPECIAL_FLOATS[$value];
                }
            }
            foreach ($floatText as $name) {
                if (is_float($row[$name] ?? null) || is_int($row[$name] ?? null)) {
                    $row[$name] = self::postgresFloat((float) $row[$name]);
                }
            }
        }
        unset($row);
        return $rows;
    }

    /** @return resource a readable stream of the bytes, positioned at the start */
    private static function stream(string $bytes)
    {
        $stream = fopen('php://memory', 'r+b');
        if ($stream === false) {
            throw new \RuntimeException('cannot open php://memory');
        }
        fwrite($stream, $bytes);
        rewind($stream);
        return $stream;
    }

    /** A double as PostgreSQL 12+ prints it: the shortest text that reads back exactly. */
    public static function postgresFloat(float $value): string
    {
        if (is_nan($value)) {
            return 'NaN';
        }
        if (is_infinite($value)) {
            return $value > 0 ? 'Infinity' : '-Infinity';
        }
        $sign = $value < 0 ? '-' : '';
        // var_export gives the shortest text that reads back exactly; take its digits and
        // decimal exponent, then lay them out as PostgreSQL does.
        $precision = ini_get('serialize_precision');
        if ($precision !== '-1') {
            ini_set('serialize_precision', '-1');
        }
        $text = strtolower(var_export(abs($value), true));
        if ($precision !== '-1' && $precision !== false) {
            ini_set('serialize_precision', $precision);
        }
        $exponent = 0;
        if (str_contains($text, 'e')) {
            [$text, $power] = explode('e', $text);
            $exponent = (int) $power;
        }
        [$whole, $fraction] = array_pad(explode('.', $text), 2, '');
        $digits = ltrim($whole . $fraction, '0');
        if ($digits === '') {
            return $sign . '0';
        }
        // Scientific exponent: the position of the first significant digit.
        $leadingZeros = strlen($whole . $fraction) - strlen(ltrim($whole . $fraction, '0'));
        $exponent += strlen($whole) - $leadingZeros - 1;
        $digits = rtrim($digits, '0');
        if ($exponent < -4 || $exponent >= 15) {
            $mantissa = $digits[0] . (strlen($digits) > 1 ? '.' . substr($digits, 1) : '');
            return sprintf('%s%se%s%02d', $sign, $mantissa, $exponent < 0 ? '-' : '+', abs($exponent));
        }
        if ($exponent < 0) {
            return $sign . '0.' . str_repeat('0', -$exponent - 1) . $digits;
        }
        $integer = str_pad(substr($digits, 0, $exponent + 1), $exponent + 1, '0');
        $rest = substr($digits, $exponent + 1);
        return $sign . $integer . ($rest === '' ? '' : '.' . $rest);
    }
}
