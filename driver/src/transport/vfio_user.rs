//! The vfio-user client transport (a UNIX socket to a vfio-user server).
