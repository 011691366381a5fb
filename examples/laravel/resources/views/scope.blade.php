<!doctype html>
<title>Scope</title>
<h1>This request's scope</h1>
<p>X-Zeno-Request-Id: <code>{{ $requestId ?? '(not under zeno)' }}</code></p>
<pre>{{ json_encode($scope, JSON_PRETTY_PRINT) }}</pre>
