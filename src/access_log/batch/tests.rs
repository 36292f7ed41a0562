use super::*;

/// Records each write it gets, whole.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

impl Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().push(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Recorder {
    fn writes(&self) -> Vec<String> {
        let writes = self.0.lock().unwrap();
        writes
            .iter()
            .map(|w| String::from_utf8(w.clone()).unwrap())
            .collect()
    }
}

fn push_text(batch: &LineBatch, text: &str) {
    batch.push(|out| out.extend_from_slice(text.as_bytes()));
}

#[tokio::test]
async fn lines_of_one_turn_go_out_in_one_write() {
    let out = Recorder::default();
    let (batch, flusher) = LineBatch::new(Box::new(out.clone()));
    let flusher = tokio::spawn(flusher);
    push_text(&batch, "one\n");
    push_text(&batch, "two\n");
    // Nothing is written while the requests' task runs...
    assert!(out.writes().is_empty());
    // ...and everything at once when the flush task has had its turn.
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    assert_eq!(out.writes(), ["one\ntwo\n"]);
    // The next line wakes the task again.
    push_text(&batch, "three\n");
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    assert_eq!(out.writes(), ["one\ntwo\n", "three\n"]);
    drop(batch);
    flusher.await.unwrap();
}

#[tokio::test]
async fn a_full_buffer_is_written_without_waiting() {
    let out = Recorder::default();
    let (batch, _flusher) = LineBatch::new(Box::new(out.clone()));
    let line = format!("{}\n", "x".repeat(999));
    let lines = BATCH_BYTES / line.len() + 1;
    for _ in 0..lines {
        push_text(&batch, &line);
    }
    // The flush task was never polled: the push that filled the buffer wrote it.
    let writes = out.writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0], line.repeat(lines));
}

#[tokio::test]
async fn dropping_the_batch_writes_what_is_left_and_ends_the_task() {
    let out = Recorder::default();
    let (batch, flusher) = LineBatch::new(Box::new(out.clone()));
    let flusher = tokio::spawn(flusher);
    push_text(&batch, "last\n");
    drop(batch);
    assert_eq!(out.writes(), ["last\n"]);
    flusher.await.unwrap();
    assert_eq!(out.writes(), ["last\n"], "nothing written twice");
}

#[test]
fn an_unwritable_output_drops_lines_without_failing() {
    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }
    let (batch, _flusher) = LineBatch::new(Box::new(Closed));
    for _ in 0..=BATCH_BYTES / 10 {
        push_text(&batch, "123456789\n");
    }
    // The failed write emptied the buffer: memory stays bounded.
    assert!(batch.lock().lines.len() < BATCH_BYTES);
}
