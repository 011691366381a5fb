<?php

namespace App\Http\Middleware;

use Illuminate\Foundation\Http\Middleware\VerifyCsrfToken as Middleware;

class VerifyCsrfToken extends Middleware
{
    /** The JSON endpoints under /api take no CSRF token. */
    protected $except = ['api/*'];
}
