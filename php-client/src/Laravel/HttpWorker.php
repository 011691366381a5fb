<?php

declare(strict_types=1);

namespace Zeno\Laravel;

use Illuminate\Contracts\Http\Kernel as HttpKernel;
use Illuminate\Foundation\Application;
use Illuminate\Http\Request as LaravelRequest;
use Symfony\Component\HttpFoundation\BinaryFileResponse;
use Illuminate\Http\UploadedFile;
use Symfony\Component\HttpFoundation\File\UploadedFile as SymfonyUploadedFile;
use Symfony\Component\HttpFoundation\Request as SymfonyRequest;
use Symfony\Component\HttpFoundation\Response as SymfonyResponse;
use Symfony\Component\HttpFoundation\StreamedResponse;
use Zeno\Request;
use Zeno\Response;
use Zeno\Zeno;

/**
 * A Laravel app in worker mode: booted once (bootstrap/app.php, the HTTP kernel's
 * bootstrappers, service providers), then every request goes through the kernel. The
 * response is returned to the host first; terminate() and the state reset run after it.
 */
final class HttpWorker
{
    private function __construct(
        private Application $app,
        private HttpKernel $kernel,
        private StateReset $reset,
    ) {
    }

    /** Boots the app in `$appDir` once for this worker. */
    public static function boot(string $appDir): self
    {
        $app = AppLoader::load($appDir);
        // As under PHP-FPM, the working directory is the document root.
        chdir($app->publicPath());
        $kernel = $app->make(HttpKernel::class);
        $kernel->bootstrap();
        // As Request::capture() does; a process-wide flag, so once.
        SymfonyRequest::enableHttpMethodParameterOverride();
        $reset = StateReset::capture($app);
        TaskInvoker::install($app, $reset);
        return new self($app, $kernel, $reset);
    }

    public function __invoke(Request $request): ?Response
    {
        $laravelRequest = self::laravelRequest();
        $response = $this->kernel->handle($laravelRequest);
        $zenoResponse = self::zenoResponse($response);
        Zeno::defer(function () use ($laravelRequest, $response): void {
            try {
                $this->kernel->terminate($laravelRequest, $response);
            } finally {
                $this->reset->afterRequest($this->app);
            }
        });
        return $zenoResponse;
    }

    /** The request the runtime put in the superglobals, as Laravel's Request::capture() builds it. */
    private static function laravelRequest(): LaravelRequest
    {
        $request = LaravelRequest::createFromBase(SymfonyRequest::createFromGlobals());
        // The host wrote the uploads itself, so is_uploaded_file() says no: mark them as
        // trusted, or isValid()/store()/move() would refuse them.
        $request->files->replace(self::trusted($request->files->all()));
        return $request;
    }

    /**
     * @param array<mixed> $files
     * @return array<mixed>
     */
    private static function trusted(array $files): array
    {
        foreach ($files as $key => $file) {
            if ($file instanceof SymfonyUploadedFile) {
                // Laravel's own class, which Request::file() keeps as it is (it would rebuild
                // a Symfony one and lose the flag).
                $files[$key] = new UploadedFile(
                    $file->getPathname(),
                    $file->getClientOriginalName(),
                    $file->getClientMimeType(),
                    $file->getError(),
                    true,
                );
            } elseif (is_array($file)) {
                $files[$key] = self::trusted($file);
            }
        }
        return $files;
    }

    /**
     * The response for the runtime. Streamed ones (`StreamedResponse`, `StreamedJsonResponse`,
     * `BinaryFileResponse`: `stream()`, `streamDownload()`, `download()`, `file()`) are sent as
     * under PHP-FPM: headers through `header()`, content echoed, so the runtime streams it as
     * it comes; null is returned then.
     */
    /**
     * Symfony's sendHeaders() without its headers_sent() check, which is always true in a
     * worker (the protocol uses stdout) though php-cgi still takes header() calls.
     */
    private static function sendHeaders(SymfonyResponse $response): void
    {
        foreach ($response->headers->allPreserveCaseWithoutCookies() as $name => $values) {
            $replace = strcasecmp((string) $name, 'Content-Type') === 0;
            foreach ($values as $value) {
                header($name . ': ' . $value, $replace);
            }
        }
        foreach ($response->headers->getCookies() as $cookie) {
            header('Set-Cookie: ' . $cookie, false);
        }
        http_response_code($response->getStatusCode());
    }

    private static function zenoResponse(SymfonyResponse $response): ?Response
    {
        if ($response instanceof StreamedResponse || $response instanceof BinaryFileResponse || !is_string($response->getContent())) {
            self::sendHeaders($response);
            $response->sendContent();
            return null;
        }
        $body = (string) $response->getContent();
        $zeno = new Response($body, $response->getStatusCode());
        foreach ($response->headers->allPreserveCaseWithoutCookies() as $name => $values) {
            $zeno->withHeader((string) $name, array_map('strval', $values));
        }
        foreach ($response->headers->getCookies() as $cookie) {
            $zeno->addHeader('set-cookie', (string) $cookie);
        }
        return $zeno;
    }
}
