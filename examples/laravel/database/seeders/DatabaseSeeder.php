<?php

namespace Database\Seeders;

use App\Models\Author;
use App\Models\User;
use Illuminate\Database\Seeder;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Hash;

class DatabaseSeeder extends Seeder
{
    public function run()
    {
        DB::transaction(function () {
            User::query()->updateOrCreate(
                ['email' => 'ada@example.com'],
                ['name' => 'Ada', 'password' => Hash::make('secret')]
            );
            foreach (['Ada Lovelace', 'Grace Hopper', 'Edsger Dijkstra'] as $i => $name) {
                $author = Author::query()->updateOrCreate(
                    ['email' => strtolower(strtok($name, ' ')) . '@example.com'],
                    ['name' => $name]
                );
                if ($author->posts()->exists()) {
                    continue;
                }
                for ($n = 1; $n <= 9; $n++) {
                    $author->posts()->create([
                        'title' => "{$name}, note {$n}",
                        'body' => "Note {$n} by {$name}.",
                        'published' => $n % 3 !== 0,
                        'score' => $n * 1.5 + $i,
                        'published_at' => $n % 3 !== 0 ? now()->subDays($n) : null,
                    ]);
                }
            }
        });
    }
}
