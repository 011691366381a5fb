<!doctype html>
<title>Posts</title>
<link rel="stylesheet" href="/css/app.css">
<h1>Posts</h1>
<ul>
@foreach ($posts as $post)
    <li>{{ $post->title }} — {{ $post->author->name }} ({{ $post->score }})</li>
@endforeach
</ul>
<p>Page {{ $posts->currentPage() }} of {{ $posts->lastPage() }}, {{ $posts->total() }} posts.</p>
{{ $posts->links() }}
