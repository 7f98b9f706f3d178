//! The shared groupmesh tests over real TCP on 127.0.0.1, on async-std.

groupmesh_driver::runtime_tests!(groupmesh_async_std::AsyncStd, async_std::task::block_on);
