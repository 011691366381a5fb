<?php

declare(strict_types=1);

namespace Zeno\Laravel\Database;

use PDO;
use PDOStatement;
use Zeno\Db\Rows;

/**
 * A prepared statement on a ZenoPdo: collects bound values, runs through `db_query` on
 * execute, and fetches the rows the host returned in any of the PDO fetch modes Laravel
 * and applications use.
 */
final class ZenoStatement extends PDOStatement
{
    /** @var array<int|string, mixed> */
    private array $bound = [];
    /** @var list<array<string, mixed>> */
    private array $rows = [];
    /** @var list<array<string, mixed>> */
    private array $columns = [];
    private int $position = 0;
    private int $affected = 0;
    private int $fetchMode = PDO::FETCH_BOTH;
    /** @var array<int, mixed> */
    private array $fetchArgs = [];

    public function __construct(private ZenoPdo $pdo, private string $sql)
    {
    }

    public function bindValue(int|string $param, mixed $value, int $type = PDO::PARAM_STR): bool
    {
        $this->bound[is_string($param) ? ltrim($param, ':') : $param] = match (true) {
            $value === null, $type === PDO::PARAM_NULL => null,
            $type === PDO::PARAM_BOOL => (bool) $value,
            $type === PDO::PARAM_INT && is_numeric($value) && (int) $value == $value => (int) $value,
            // A LOB binds as bytes, whatever they are (pdo_pgsql sends bytea in binary).
            is_resource($value) => ZenoPdo::binary((string) stream_get_contents($value)),
            $type === PDO::PARAM_LOB && is_scalar($value) => ZenoPdo::binary((string) $value),
            default => $value,
        };
        return true;
    }

    public function bindParam(
        int|string $param,
        mixed &$var,
        int $type = PDO::PARAM_STR,
        int $maxLength = 0,
        mixed $driverOptions = null,
    ): bool {
        return $this->bindValue($param, $var, $type);
    }

    public function execute(?array $params = null): bool
    {
        if ($params !== null) {
            $this->bound = [];
            foreach ($params as $key => $value) {
                $this->bindValue(is_int($key) ? $key + 1 : $key, $value);
            }
        }
        [$sql, $values] = self::positional($this->sql, $this->bound);
        $data = $this->pdo->run($sql, $values);
        $this->columns = $data['columns'] ?? [];
        $this->rows = Rows::asPdo(['rows' => $data['rows'] ?? [], 'columns' => $this->columns], $this->pdo->driver());
        $this->affected = (int) ($data['affected'] ?? 0);
        $this->position = 0;
        return true;
    }

    public function setFetchMode(int $mode, mixed ...$args): bool
    {
        $this->fetchMode = $mode;
        $this->fetchArgs = $args;
        return true;
    }

    public function fetch(int $mode = PDO::FETCH_DEFAULT, int $cursorOrientation = PDO::FETCH_ORI_NEXT, int $cursorOffset = 0): mixed
    {
        if (!isset($this->rows[$this->position])) {
            return false;
        }
        $row = $this->rows[$this->position++];
        return $this->shape($row, $mode === PDO::FETCH_DEFAULT ? $this->fetchMode : $mode, $this->fetchArgs);
    }

    public function fetchAll(int $mode = PDO::FETCH_DEFAULT, mixed ...$args): array
    {
        if ($mode === PDO::FETCH_DEFAULT) {
            $mode = $this->fetchMode;
            $args = $this->fetchArgs;
        }
        $rows = [];
        while (isset($this->rows[$this->position])) {
            $rows[] = $this->rows[$this->position++];
        }
        $base = $mode & ~(PDO::FETCH_UNIQUE | PDO::FETCH_GROUP | PDO::FETCH_PROPS_LATE);
        if ($base === PDO::FETCH_KEY_PAIR) {
            $out = [];
            foreach ($rows as $row) {
                if (count($row) !== 2) {
                    throw new \PDOException('SQLSTATE[HY000]: General error: fetch mode requires the result set to contain exactly 2 columns.');
                }
                [$key, $value] = array_values($row);
                $out[$key] = $value;
            }
            return $out;
        }
        if ($base === PDO::FETCH_FUNC) {
            $callback = $args[0] ?? null;
            if (!is_callable($callback)) {
                throw new \PDOException('SQLSTATE[HY000]: General error: fetch mode FETCH_FUNC requires a callable');
            }
            return array_map(static fn (array $row) => $callback(...array_values($row)), $rows);
        }
        if (($mode & PDO::FETCH_GROUP) === PDO::FETCH_GROUP) {
            // The first column is the key; the rest of the row is shaped by the base mode.
            $unique = ($mode & PDO::FETCH_UNIQUE) === PDO::FETCH_UNIQUE;
            $rest = $base === PDO::FETCH_COLUMN ? [0] : $args;
            $out = [];
            foreach ($rows as $row) {
                $key = reset($row);
                $first = array_key_first($row);
                if (in_array($base, [PDO::FETCH_DEFAULT, PDO::FETCH_BOTH], true)) {
                    // BOTH keeps the other columns' positions (1, 2, …); NUM renumbers them.
                    $value = $this->shape($row, $base === PDO::FETCH_DEFAULT ? PDO::FETCH_BOTH : $base, $rest);
                    unset($value[$first], $value[0]);
                } else {
                    $value = $this->shape(array_slice($row, 1, null, true), $base, $rest);
                }
                if ($unique) {
                    $out[$key] = $value;
                } else {
                    $out[$key][] = $value;
                }
            }
            return $out;
        }
        return array_map(fn (array $row) => $this->shape($row, $mode, $args), $rows);
    }

    public function fetchColumn(int $column = 0): mixed
    {
        if (!isset($this->rows[$this->position])) {
            return false;
        }
        return array_values($this->rows[$this->position++])[$column] ?? false;
    }

    public function fetchObject(?string $class = 'stdClass', array $constructorArgs = []): object|false
    {
        $row = $this->fetch(PDO::FETCH_ASSOC);
        if ($row === false) {
            return false;
        }
        return self::object($row, $class ?? \stdClass::class, $constructorArgs);
    }

    public function rowCount(): int
    {
        return $this->affected;
    }

    public function columnCount(): int
    {
        return count($this->columns);
    }

    public function closeCursor(): bool
    {
        $this->rows = [];
        $this->position = 0;
        return true;
    }

    public function nextRowset(): bool
    {
        return false;
    }

    public function errorCode(): ?string
    {
        return '00000';
    }

    public function errorInfo(): array
    {
        return ['00000', null, null];
    }

    public function getIterator(): \Iterator
    {
        while (($row = $this->fetch()) !== false) {
            yield $row;
        }
    }

    /**
     * @param array<string, mixed> $row
     * @param array<int, mixed> $args
     */
    private function shape(array $row, int $mode, array $args): mixed
    {
        $base = $mode & ~(PDO::FETCH_GROUP | PDO::FETCH_UNIQUE | PDO::FETCH_PROPS_LATE);
        if ($base === PDO::FETCH_DEFAULT) {
            // FETCH_GROUP or FETCH_UNIQUE alone: the rest of the row as PDO's default, BOTH.
            $base = PDO::FETCH_BOTH;
        }
        return match ($base) {
            PDO::FETCH_ASSOC, PDO::FETCH_NAMED => $row,
            PDO::FETCH_NUM => array_values($row),
            PDO::FETCH_BOTH => self::both($row),
            PDO::FETCH_OBJ, PDO::FETCH_LAZY => (object) $row,
            PDO::FETCH_COLUMN => array_values($row)[$args[0] ?? 0] ?? null,
            PDO::FETCH_CLASS => self::object($row, (string) ($args[0] ?? \stdClass::class), (array) ($args[1] ?? [])),
            PDO::FETCH_CLASS | PDO::FETCH_CLASSTYPE => self::object(
                array_slice($row, 1, null, true),
                (string) (reset($row) ?: \stdClass::class),
                [],
            ),
            PDO::FETCH_INTO => self::into($row, $args[0] ?? null),
            PDO::FETCH_KEY_PAIR => count($row) === 2
                ? [array_values($row)[0] => array_values($row)[1]]
                : throw new \PDOException('SQLSTATE[HY000]: General error: fetch mode requires the result set to contain exactly 2 columns.'),
            PDO::FETCH_FUNC => is_callable($args[0] ?? null)
                ? ($args[0])(...array_values($row))
                : throw new \PDOException('SQLSTATE[HY000]: General error: fetch mode FETCH_FUNC requires a callable'),
            default => throw new \PDOException("zeno_proxy does not support fetch mode {$mode}"),
        };
    }

    /** @param array<string, mixed> $row */
    private static function into(array $row, mixed $object): object
    {
        if (!is_object($object)) {
            throw new \PDOException('SQLSTATE[HY000]: General error: FETCH_INTO needs an object (setFetchMode(PDO::FETCH_INTO, $object))');
        }
        foreach ($row as $name => $value) {
            $object->{$name} = $value;
        }
        return $object;
    }

    /** @param array<string, mixed> $row */
    private static function both(array $row): array
    {
        $out = [];
        $i = 0;
        foreach ($row as $name => $value) {
            $out[$name] = $value;
            $out[$i++] = $value;
        }
        return $out;
    }

    /**
     * @param array<string, mixed> $row
     * @param array<int, mixed> $constructorArgs
     */
    private static function object(array $row, string $class, array $constructorArgs): object
    {
        if ($class === \stdClass::class) {
            return (object) $row;
        }
        $object = (new \ReflectionClass($class))->newInstanceWithoutConstructor();
        foreach ($row as $name => $value) {
            $object->{$name} = $value;
        }
        if (method_exists($object, '__construct')) {
            $object->__construct(...$constructorArgs);
        }
        return $object;
    }

    /**
     * Named parameters (`:id`) become positional `?`, the only kind the host binds. String
     * literals, quoted identifiers, comments and PostgreSQL `::` casts are left alone.
     *
     * @param array<int|string, mixed> $bound
     * @return array{0: string, 1: list<mixed>}
     */
    public static function positional(string $sql, array $bound): array
    {
        $named = array_filter(array_keys($bound), 'is_string');
        if ($named === []) {
            ksort($bound);
            return [$sql, array_values($bound)];
        }
        $out = '';
        $values = [];
        $length = strlen($sql);
        for ($i = 0; $i < $length; $i++) {
            $c = $sql[$i];
            if ($c === "'" || $c === '"' || $c === '`') {
                $end = $i + 1;
                while ($end < $length && $sql[$end] !== $c) {
                    $end += $sql[$end] === '\\' && $c !== '"' ? 2 : 1;
                }
                $out .= substr($sql, $i, $end - $i + 1);
                $i = $end;
            } elseif ($c === '-' && ($sql[$i + 1] ?? '') === '-') {
                $end = strpos($sql, "\n", $i);
                $end = $end === false ? $length : $end;
                $out .= substr($sql, $i, $end - $i);
                $i = $end - 1;
            } elseif ($c === ':' && ($sql[$i + 1] ?? '') === ':') {
                $out .= '::';
                $i++;
            } elseif ($c === ':' && preg_match('/\G:([A-Za-z_][A-Za-z0-9_]*)/', $sql, $m, 0, $i) === 1) {
                if (!array_key_exists($m[1], $bound)) {
                    throw new \PDOException("SQLSTATE[HY093]: Invalid parameter number: parameter :{$m[1]} was not bound");
                }
                $out .= '?';
                $values[] = $bound[$m[1]];
                $i += strlen($m[0]) - 1;
            } else {
                $out .= $c;
            }
        }
        return [$out, $values];
    }
}
