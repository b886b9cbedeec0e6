//! The async store on smol: a few tasks on smol's executor sharing one handle, with the
//! store's threads on the `blocking` pool that smol uses.
//!
//! Run: `cargo run --example smol_app --features smol`

use nanasqlite::smol::{AsyncNanaSQLite, SmolBlockingPool};
use serde_json::json;

fn main() -> nanasqlite::Result<()> {
    smol::block_on(async {
        let path = std::env::temp_dir().join(format!("nanasqlite-smol-{}.db", std::process::id()));
        let db = AsyncNanaSQLite::builder(&path).spawner(SmolBlockingPool).open().await?;

        let tasks: Vec<smol::Task<nanasqlite::Result<()>>> = (0..4)
            .map(|worker| {
                let db = db.clone();
                smol::spawn(async move {
                    for i in 0..25 {
                        db.aset(&format!("worker{worker}:{i}"), &json!({"worker": worker, "i": i})).await?;
                    }
                    nanasqlite::Result::Ok(())
                })
            })
            .collect();
        for task in tasks {
            task.await?;
        }
        println!("{} keys written by 4 tasks", db.alen().await?);
        println!("worker2:7 = {:?}", db.aget::<serde_json::Value>("worker2:7").await?);
        println!("stats: {:?}", db.stats());
        db.close().await?;
        let _ = std::fs::remove_file(&path);
        Ok(())
    })
}
