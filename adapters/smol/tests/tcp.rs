//! The shared groupmesh tests over real TCP on 127.0.0.1, on smol.

groupmesh_driver::runtime_tests!(groupmesh_smol::Smol, smol::block_on);
