//! The async store on async-std (discontinued upstream: prefer smol for new code).
//!
//! Run: `cargo run --example async_std_app --features async-std`

use nanasqlite::async_std::{AsyncNanaSQLite, AsyncStdBlockingPool};

fn main() -> nanasqlite::Result<()> {
    async_std::task::block_on(async {
        let path = std::env::temp_dir().join(format!("nanasqlite-async-std-{}.db", std::process::id()));
        let db = AsyncNanaSQLite::builder(&path).spawner(AsyncStdBlockingPool).open().await?;
        let counter: async_std::task::JoinHandle<nanasqlite::Result<()>> = async_std::task::spawn({
            let db = db.clone();
            async move {
                for _ in 0..10 {
                    let n: u32 = db.get("visits").await?.unwrap_or(0);
                    db.set("visits", &(n + 1)).await?;
                }
                nanasqlite::Result::Ok(())
            }
        });
        counter.await?;
        println!("visits = {:?}", db.get::<u32>("visits").await?);
        db.close().await?;
        let _ = std::fs::remove_file(&path);
        Ok(())
    })
}
