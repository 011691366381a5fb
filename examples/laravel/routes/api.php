<?php

use App\Models\Author;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Route;

// Creates an author (if new) and a post in one transaction.
Route::post('/posts', function (Request $request) {
    $data = $request->validate([
        'email' => 'required|email',
        'name' => 'required|string|max:100',
        'title' => 'required|string|max:200',
        'body' => 'required|string',
    ]);
    $post = DB::transaction(function () use ($data) {
        $author = Author::query()->firstOrCreate(['email' => $data['email']], ['name' => $data['name']]);
        return $author->posts()->create(['title' => $data['title'], 'body' => $data['body'], 'published' => true]);
    });
    return response()->json($post->load('author'), 201);
});
