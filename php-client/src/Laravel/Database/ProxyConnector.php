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
    /** @var array<string, string>|null the host's connections and their backends */
    private ?array $backends = null;
    /** @var array<string, string> database names by host connection */
    private array $databases = [];

    /** @param array<string, mixed> $config */
    public function connect(array $config, string $name): Connection
    {
        $target = (string) ($config['connection'] ?? 'default');
        $driver = $this->backend($target);
        $write = new ZenoPdo($target, $driver, 'write');
        $read = new ZenoPdo($target, $driver, 'read');
        // Laravel (and apps) read the driver name to pick SQL dialects: report the backend.
        $config['driver'] = $driver;
        $config['name'] = $name;
        $config['zeno_connection'] = $target;
        if ($driver === 'pgsql' && !isset($config['schema']) && !isset($config['search_path'])) {
            // Laravel's own pgsql defaults: without them Laravel 8's schema builder lists no
            // tables, and migrate:fresh / db:wipe silently drop nothing.
            $config['schema'] = 'public';
            $config['search_path'] = 'public';
        }
        $database = (string) ($config['database'] ?? $this->database($write, $target, $driver));
        $config['database'] = $database;
        $class = match ($driver) {
            'pgsql' => PostgresConnection::class,
            'mysql' => MySqlConnection::class,
            default => SQLiteConnection::class,
        };
        /** @var Connection $connection */
        $connection = new $class($write, $database, (string) ($config['prefix'] ?? ''), $config);
        $connection->setReadPdo($read);
        return $connection;
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
