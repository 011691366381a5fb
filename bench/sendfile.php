<?php

declare(strict_types=1);

// Answers every request with an X-Sendfile header naming ?file=: the host sends the file.
return static function (Zeno\Request $request): ?string {
    header('Content-Type: application/octet-stream');
    header('X-Sendfile: ' . $request->query('file', ''));
    return null;
};
