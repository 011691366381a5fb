<?php

use Illuminate\Support\Facades\Artisan;
use Illuminate\Support\Facades\DB;

Artisan::command('posts:count', function () {
    $this->info('posts: ' . DB::table('posts')->count());
})->purpose('Count the posts');

// Where one query's time goes inside a worker (scripts/bench-laravel.sh runs it under
// `zeno artisan`): N times the same one-row lookup through the host call alone, through
// zeno_proxy's PDO, through Laravel's query builder on zeno_proxy, and through Laravel on
// native pdo_pgsql (DB_* of the environment). Prints µs per query, CPU and wall, as JSON.
Artisan::command('bench:query-split {n=2000}', function (int $n) {
    $sql = 'select * from posts where id = ? limit 1';
    $time = static function (callable $run) use ($n): array {
        $run();
        $cpu = static function (): float {
            $u = getrusage();
            return $u['ru_utime.tv_sec'] * 1e6 + $u['ru_utime.tv_usec'] + $u['ru_stime.tv_sec'] * 1e6 + $u['ru_stime.tv_usec'];
        };
        [$c0, $w0] = [$cpu(), hrtime(true)];
        for ($i = 0; $i < $n; $i++) {
            $run();
        }
        return ['cpu_us' => round(($cpu() - $c0) / $n, 1), 'wall_us' => round((hrtime(true) - $w0) / 1000 / $n, 1)];
    };
    $pdo = DB::connection()->getPdo();
    $out = [
        'host_call' => $time(fn () => \Zeno::call('db_query', ['sql' => $sql, 'params' => [1], 'mode' => 'read'])),
        'zeno_proxy_pdo' => $time(function () use ($pdo, $sql) {
            $statement = $pdo->prepare($sql);
            $statement->execute([1]);
            $statement->fetch(PDO::FETCH_OBJ);
        }),
        'laravel_zeno_proxy' => $time(fn () => DB::table('posts')->where('id', 1)->first()),
    ];
    if (getenv('DB_HOST') !== false) {
        $out['laravel_pdo_pgsql'] = $time(fn () => DB::connection('pgsql')->table('posts')->where('id', 1)->first());
    }
    $this->line(json_encode(['queries' => $n] + $out));
})->purpose('Time one query through each layer (benchmark)');
