//! A tensor's storage is shared by its handles and views, across threads, behind a
//! readers-writer lock. An op that reads the same storage twice (`x * x`, or any op inside
//! `with_slice`) must not wait behind a writer that is itself waiting for the first read to end:
//! that would hang both threads.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tensile_core::Tensor;

#[test]
fn reading_a_storage_again_does_not_wait_behind_a_waiting_writer() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [4]).unwrap();
    let (done, result) = mpsc::channel();
    let reader = {
        let x = x.clone();
        thread::spawn(move || {
            x.with_slice::<f32, _>(|_| {
                // While this read is held, another thread asks to write and waits for it.
                let writer = {
                    let x = x.clone();
                    thread::spawn(move || x.update_::<f32, _>(|w| w.iter_mut().for_each(|v| *v += 1.0)).unwrap())
                };
                thread::sleep(Duration::from_millis(200));
                // Two more reads of the same storage, with the writer queued.
                let _ = done.send(x.mul(&x).unwrap().to_vec::<f32>().unwrap());
                writer
            })
            .unwrap()
        })
    };
    let squares = result.recv_timeout(Duration::from_secs(20));
    assert_eq!(
        squares.expect("x * x did not finish: its reads waited behind the queued writer"),
        vec![1.0, 4.0, 9.0, 16.0],
        "the product reads the values from before the write"
    );
    reader.join().unwrap().join().unwrap();
    assert_eq!(x.to_vec::<f32>().unwrap(), vec![2.0, 3.0, 4.0, 5.0], "the writer ran once the reads ended");
}
