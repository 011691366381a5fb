<?php

declare(strict_types=1);

namespace Zeno\Laravel\Database;

use Illuminate\Database\Connection;
use Illuminate\Database\MySqlConnection;
use Illuminate\Database\PostgresConnection;
use Illuminate\Database\SQLiteConnection;
use Zeno\Zeno;

/**
 * Builds the Laravel connection for `'driver' => 'zeno_proxy'`: the host says which backend
 * its connection is, and the app gets that backend's own Connection class (grammar,
 * processor, schema builder, error detection) over ZenoPdo handles instead of PDO.
 */
final class ProxyConnector
{
    /** Laravel 11+'s class for MariaDB (its own grammar: thread count, uuid, no lateral joins). */
    private const MARIADB_CONNECTION = 'Illuminate\\Database\\MariaDbConnection';

    /** @var array<string, string>|null the host's connections and their backends */
    private ?array $backends = null;
    /** @var array<string, bool> whether each host connection's server is MariaDB */
    private array $mariadb = [];
    /** @var array<string, string> database names by host connection */
    private array $databases = [];

    /** @param array<string, mixed> $config */
    public function connect(array $config, string $name): Connection
    {
        $target = (string) ($config['connection'] ?? 'default');
        $backend = $this->backend($target);
        $write = new ZenoPdo($target, $backend, 'write');
        $driver = $this->laravelDriver($config, $write);
        $read = new ZenoPdo($target, $backend, 'read');
        // Laravel (and apps) read the driver name to pick SQL dialects: report the backend.
        $config['driver'] = $driver;
        $config['name'] = $name;
        $config['zeno_connection'] = $target;
        if ($backend === 'pgsql' && !isset($config['schema']) && !isset($config['search_path'])) {
            // Laravel's own pgsql defaults: without them Laravel 8's schema builder lists no
            // tables, and migrate:fresh / db:wipe silently drop nothing.
            $config['schema'] = 'public';
            $config['search_path'] = 'public';
        }
        $database = (string) ($config['database'] ?? $this->database($write, $target, $backend));
        $config['database'] = $database;
        $class = match ($driver) {
            'pgsql' => PostgresConnection::class,
            'mariadb' => self::MARIADB_CONNECTION,
            'mysql' => MySqlConnection::class,
            default => SQLiteConnection::class,
        };
        /** @var Connection $connection */
        $connection = new $class($write, $database, (string) ($config['prefix'] ?? ''), $config);
        $connection->setReadPdo($read);
        return $connection;
    }

    /**
     * The driver name Laravel sees for a zeno_proxy connection: `pgsql`, `mysql`, `sqlite`, or
     * on Laravel 11+ against a MariaDB server `mariadb` — what the native config would say, so
     * every `driver === …` branch in Laravel and packages behaves as native. The connection's
     * `backend_driver` setting (`mysql` or `mariadb`) overrides the guess.
     *
     * @param array<string, mixed> $config
     */
    public function driverFor(array $config): string
    {
        $target = (string) ($config['connection'] ?? 'default');
        $backend = $this->backend($target);
        return $this->laravelDriver($config, new ZenoPdo($target, $backend, 'write'));
    }

    /** @param array<string, mixed> $config */
    private function laravelDriver(array $config, ZenoPdo $pdo): string
    {
        $backend = $pdo->driver();
        if ($backend !== 'mysql') {
            return $backend;
        }
        $chosen = $config['backend_driver'] ?? null;
        if (in_array($chosen, ['mysql', 'mariadb'], true)) {
            return $chosen === 'mariadb' && !class_exists(self::MARIADB_CONNECTION) ? 'mysql' : $chosen;
        }
        if (!class_exists(self::MARIADB_CONNECTION)) {
            return 'mysql';
        }
        $target = $pdo->zenoConnection();
        if (!isset($this->mariadb[$target])) {
            $this->mariadb[$target] = str_contains((string) $pdo->getAttribute(\PDO::ATTR_SERVER_VERSION), 'MariaDB');
        }
        return $this->mariadb[$target] ? 'mariadb' : 'mysql';
    }

    private function backend(string $target): string
    {
        if ($this->backends === null) {
            $result = Zeno::call('db_connections');
            if (!$result['success']) {
                throw new \RuntimeException('zeno_proxy: the host has no databases: ' . $result['error']);
            }
            $this->backends = array_map('strval', (array) $result['data']);
        }
        $backend = $this->backends[$target] ?? null;
        if ($backend === null) {
            throw new \InvalidArgumentException(sprintf(
                "zeno_proxy: the host has no database connection '%s' (it has: %s)",
                $target,
                implode(', ', array_keys($this->backends)) ?: 'none',
            ));
        }
        return match ($backend) {
            'postgres', 'pgsql' => 'pgsql',
            'mysql' => 'mysql',
            default => 'sqlite',
        };
    }

    /**
     * The database's name, which the schema builder needs on MySQL and PostgreSQL. SQLite
     * gets ':memory:' so that nothing in Laravel ever rewrites the host's database file.
     */
    private function database(ZenoPdo $pdo, string $target, string $driver): string
    {
        if ($driver === 'sqlite') {
            return ':memory:';
        }
        if (!isset($this->databases[$target])) {
            $statement = $pdo->prepare($driver === 'pgsql' ? 'select current_database() as name' : 'select database() as name');
            $statement->execute();
            $this->databases[$target] = (string) $statement->fetchColumn();
        }
        return $this->databases[$target];
    }
}
