//! The test clip: a test pattern with a 440 Hz tone, generated with ffmpeg. It has audio so
//! positions can be read from `audio-pts`, and is long enough that a seek to the middle and
//! a long hold at 1.25x stay inside it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::process::output;
use super::{Result, err};

/// Writes `clip.mp4` of `seconds` into `dir` (320x240 at 30 fps, H.264 + AAC); returns its path.
pub(crate) async fn generate(dir: &Path, seconds: u64) -> Result<PathBuf> {
    let path = dir.join("clip.mp4");
    let Some(out) = path.to_str() else {
        return err(format!("not a UTF-8 path: {}", path.display()));
    };
    let video = "testsrc=size=320x240:rate=30".to_owned();
    let audio = "sine=frequency=440:sample_rate=48000".to_owned();
    let length = seconds.to_string();
    output(
        "ffmpeg",
        &[
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            &video,
            "-f",
            "lavfi",
            "-i",
            &audio,
            "-t",
            &length,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            out,
        ],
        // About 15 s for 10 minutes on 2 cores; generous for a loaded machine.
        Duration::from_secs(60 + seconds),
    )
    .await?;
    Ok(path)
}
