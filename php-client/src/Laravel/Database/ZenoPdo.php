<?php

declare(strict_types=1);

namespace Zeno\Laravel\Database;

use PDO;
use PDOStatement;
use Zeno\Zeno;

/**
 * A PDO-shaped handle on one of the host's database connections. Laravel's Connection
 * classes drive it exactly as they drive a real PDO — prepare/execute, exec, transactions,
 * lastInsertId, quote — and every call becomes a `db_*` host call, so the pool, the
 * credentials and the transaction pinning all stay in the host.
 */
final class ZenoPdo extends PDO
{
    private bool $inTransaction = false;
    private string|false $lastInsertId = false;
    private ?string $serverVersion = null;

    /**
     * @param string $connection the host's connection name
     * @param string $driver the backend: pgsql, mysql or sqlite
     * @param string $mode "read" or "write": where the host sends this handle's statements
     */
    public function __construct(
        private string $connection,
        private string $driver,
        private string $mode = 'write',
    ) {
        // PDO's own constructor is not called: this handle never opens a connection.
    }

    /** The host connection this handle talks to. */
    public function zenoConnection(): string
    {
        return $this->connection;
    }

    public function prepare(string $query, array $options = []): PDOStatement|false
    {
        return new ZenoStatement($this, $query);
    }

    public function query(string $query, ?int $fetchMode = null, mixed ...$fetchModeArgs): PDOStatement|false
    {
        $statement = new ZenoStatement($this, $query);
        if ($fetchMode !== null) {
            $statement->setFetchMode($fetchMode, ...$fetchModeArgs);
        }
        $statement->execute();
        return $statement;
    }

    public function exec(string $statement): int|false
    {
        // Transaction control sent as SQL (Laravel 12+ on PHP 8.4 begins SQLite transactions
        // with `BEGIN DEFERRED TRANSACTION`) must pin a connection as beginTransaction()
        // does, or the statements after it would run on any pooled connection.
        if (preg_match('/^\s*(?:BEGIN(?:\s+(?:DEFERRED|IMMEDIATE|EXCLUSIVE))?(?:\s+(?:TRANSACTION|WORK))?|START\s+TRANSACTION)\s*;?\s*$/i', $statement) === 1) {
            $this->beginTransaction();
            return 0;
        }
        if (preg_match('/^\s*(?:COMMIT|END)(?:\s+(?:TRANSACTION|WORK))?\s*;?\s*$/i', $statement) === 1) {
            $this->commit();
            return 0;
        }
        if (preg_match('/^\s*ROLLBACK(?:\s+(?:TRANSACTION|WORK))?\s*;?\s*$/i', $statement) === 1) {
            $this->rollBack();
            return 0;
        }
        $data = $this->call('db_exec', ['sql' => $statement]);
        return (int) ($data['affected'] ?? 0);
    }

    public function beginTransaction(): bool
    {
        if ($this->inTransaction) {
            throw new \PDOException('There is already an active transaction');
        }
        $this->call('db_begin', []);
        $this->inTransaction = true;
        return true;
    }

    public function commit(): bool
    {
        if (!$this->inTransaction) {
            throw new \PDOException('There is no active transaction');
        }
        $this->inTransaction = false;
        $this->call('db_commit', []);
        return true;
    }

    public function rollBack(): bool
    {
        if (!$this->inTransaction) {
            throw new \PDOException('There is no active transaction');
        }
        $this->inTransaction = false;
        $this->call('db_rollback', []);
        return true;
    }

    public function inTransaction(): bool
    {
        return $this->inTransaction;
    }

    /**
     * Forgets a transaction the host has already rolled back (it does so when a request
     * ends), so the next request starts clean.
     */
    public function forgetTransaction(): void
    {
        $this->inTransaction = false;
    }

    public function lastInsertId(?string $name = null): string|false
    {
        if ($name !== null && $this->driver === 'pgsql') {
            $data = $this->call('db_query', ['sql' => 'select currval(?) as id', 'params' => [$name]]);
            return (string) ($data['rows'][0]['id'] ?? '');
        }
        return $this->lastInsertId;
    }

    public function quote(string $string, int $type = PDO::PARAM_STR): string|false
    {
        if ($this->driver === 'mysql') {
            return "'" . strtr($string, [
                '\\' => '\\\\', "\0" => '\\0', "\n" => '\\n', "\r" => '\\r', "'" => "\\'", '"' => '\\"', "\x1a" => '\\Z',
            ]) . "'";
        }
        return "'" . str_replace("'", "''", $string) . "'";
    }

    public function getAttribute(int $attribute): mixed
    {
        return match ($attribute) {
            PDO::ATTR_DRIVER_NAME => $this->driver,
            PDO::ATTR_SERVER_VERSION => $this->serverVersion(),
            PDO::ATTR_CLIENT_VERSION => 'zeno',
            PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
            PDO::ATTR_EMULATE_PREPARES, PDO::ATTR_STRINGIFY_FETCHES => false,
            PDO::ATTR_CASE => PDO::CASE_NATURAL,
            PDO::ATTR_ORACLE_NULLS => PDO::NULL_NATURAL,
            PDO::ATTR_DEFAULT_FETCH_MODE => PDO::FETCH_BOTH,
            default => null,
        };
    }

    public function setAttribute(int $attribute, mixed $value): bool
    {
        // Laravel sets the options it always sets (exceptions, no emulation, no
        // stringification), which is how the host behaves anyway.
        return true;
    }

    public function errorCode(): ?string
    {
        return '00000';
    }

    public function errorInfo(): array
    {
        return ['00000', null, null];
    }

    /** @internal runs a statement for ZenoStatement and records its insert id */
    public function run(string $sql, array $params): array
    {
        $data = $this->call('db_query', ['sql' => $sql, 'params' => $params, 'mode' => $this->mode]);
        if (isset($data['last_insert_id']) && $data['last_insert_id'] !== null) {
            $this->lastInsertId = (string) $data['last_insert_id'];
        }
        return $data;
    }

    /**
     * The host's form of a binary parameter (docs/database.md): bound as bytes, not text.
     *
     * @return array{'$binary': string}
     */
    public static function binary(string $bytes): array
    {
        return ['$binary' => base64_encode($bytes)];
    }

    /** The backend: pgsql, mysql or sqlite. */
    public function driver(): string
    {
        return $this->driver;
    }

    private function serverVersion(): string
    {
        if ($this->serverVersion === null) {
            $sql = match ($this->driver) {
                'pgsql' => 'show server_version',
                'mysql' => 'select version() as server_version',
                default => 'select sqlite_version() as server_version',
            };
            $data = $this->call('db_query', ['sql' => $sql, 'params' => []]);
            $this->serverVersion = (string) ($data['rows'][0]['server_version'] ?? '');
        }
        return $this->serverVersion;
    }

    /**
     * @param array<string, mixed> $parameters
     * @return array<string, mixed>
     */
    private function call(string $function, array $parameters): array
    {
        $parameters['connection'] = $this->connection;
        if (is_string($parameters['sql'] ?? null) && preg_match('//u', $parameters['sql']) !== 1) {
            // JSON cannot carry these bytes, and SQL text is no place for them: bind them.
            throw new ZenoPdoException(
                'SQLSTATE[HY000]: General error: zeno_proxy cannot send SQL text that is not UTF-8; '
                . 'bind binary values as parameters'
            );
        }
        foreach ($parameters['params'] ?? [] as $i => $value) {
            if (is_string($value) && preg_match('//u', $value) !== 1) {
                // A binary string (a binary(16) UUID, a blob) travels as base64 and binds as
                // bytes, as pdo_mysql and pdo_sqlite bind it.
                $parameters['params'][$i] = self::binary($value);
            }
        }
        $result = Zeno::call($function, $parameters);
        if (!$result['success']) {
            throw ZenoPdoException::fromHost($this->driver, (string) $result['error'], (array) ($result['error_info'] ?? []));
        }
        return is_array($result['data']) ? $result['data'] : [];
    }
}
