/* HDF5 helpers shared by the h5ad and 10x readers and the h5ad writer (input_hdf5.c). */
#ifndef RCTD_H5_ATTR_H
#define RCTD_H5_ATTR_H
#include <hdf5.h>
#include <stddef.h>

/* Reads a string attribute (fixed or variable length) into buf; -1 when absent or not text. */
int input_h5_attr_string(hid_t obj, const char *name, char *buf, size_t buf_size);

#endif
