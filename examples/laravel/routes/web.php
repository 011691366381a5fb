<?php

use App\Models\Post;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Route;

Route::get('/', fn () => 'Hello from Laravel');

// One query, for the benchmark.
Route::get('/db', fn () => response()->json(DB::table('posts')->where('id', 1)->first()));

// A paginated listing, authors eager-loaded.
Route::get('/posts', function () {
    $posts = Post::query()->with('author')->where('published', true)->orderBy('id')->paginate(5);
    return view('posts', ['posts' => $posts]);
});

Route::get('/posts.json', fn () => Post::query()->with('author')->orderBy('id')->paginate(5));

// What the host says about this request.
Route::get('/scope', function (Request $request) {
    return view('scope', [
        'scope' => \Zeno::scope(),
        'requestId' => $request->header('X-Zeno-Request-Id'),
    ]);
});

// What an orchestrator (examples/orchestrator) tells this app about the request, as JSON.
Route::get('/whoami', fn (Request $request) => response()->json([
    'user_id' => \Zeno::scope('user_id'),
    'cart_total' => \Zeno::scope('cart_total'),
    'header_user_id' => $request->header('X-Zeno-User-Id'),
    'url' => url('/whoami'),
    'path' => $request->path(),
]));

// Adds to the cart through the orchestrator's Rust host function `cart_add`.
Route::get('/cart/add', function (Request $request) {
    $result = \Zeno::call('cart_add', ['amount' => (float) $request->query('amount', 0)]);
    return response()->json($result, $result['success'] ? 200 : 400);
});
