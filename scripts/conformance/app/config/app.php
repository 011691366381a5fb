<?php

return [
    'name' => 'zeno-conformance',
    'env' => 'testing',
    'debug' => true,
    'timezone' => 'UTC',
    'locale' => 'en',
    'fallback_locale' => 'en',
    'key' => 'base64:' . base64_encode(str_repeat('z', 32)),
    'cipher' => 'AES-256-CBC',
    'providers' => [],
    'aliases' => [],
];
