<?php

namespace App\Models;

use Illuminate\Database\Eloquent\Model;
use Illuminate\Database\Eloquent\Relations\BelongsTo;

class Post extends Model
{
    protected $fillable = ['author_id', 'title', 'body', 'published', 'score', 'published_at'];
    protected $casts = ['published' => 'boolean', 'score' => 'float', 'published_at' => 'datetime'];

    public function author(): BelongsTo
    {
        return $this->belongsTo(Author::class);
    }
}
