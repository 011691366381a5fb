<?php

use Illuminate\Support\Facades\Artisan;
use Illuminate\Support\Facades\DB;

Artisan::command('posts:count', function () {
    $this->info('posts: ' . DB::table('posts')->count());
})->purpose('Count the posts');
