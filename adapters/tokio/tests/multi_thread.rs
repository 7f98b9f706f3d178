//! The shared groupmesh tests over real TCP on 127.0.0.1, on tokio's
//! multi-thread runtime (two workers, as on a small machine).

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime builds")
        .block_on(future)
}

groupmesh_driver::runtime_tests!(groupmesh_tokio::Tokio, block_on);
