//! The VFIO ioctls the driver needs, one safe wrapper per ioctl.
