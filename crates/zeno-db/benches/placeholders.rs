//! `?` → `$n` rewriting, run on every PostgreSQL query. `cargo bench -p zeno-db`.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};

fn placeholders(c: &mut Criterion) {
    let sql = "select \"users\".* from \"users\" where \"email\" = ? and \"active\" = ? and \
               \"note\" <> 'a ? in a string' order by \"id\" asc limit 15 offset ?";
    c.bench_function("rewrite ? to $n (3 placeholders)", |b| {
        b.iter(|| zeno_db::placeholders::rewrite_for_postgres(std::hint::black_box(sql)))
    });
}

criterion_group!(benches, placeholders);
criterion_main!(benches);
