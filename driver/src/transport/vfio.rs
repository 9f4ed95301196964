//! The kernel VFIO transport (legacy container/group API).
