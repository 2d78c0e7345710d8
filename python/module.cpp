// Makes iquest_core._C importable as a Python module; importing it runs the TORCH_LIBRARY
// registrations of this library (the ops live under torch.ops.iquest).
#include <Python.h>

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "iquest_core compiled ops", -1, nullptr};
  return PyModule_Create(&module_def);
}
