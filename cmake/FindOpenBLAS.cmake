# FindOpenBLAS: the OpenMP build of OpenBLAS (Debian: libopenblas-openmp-dev), preferred over the pthread build
# because libtrain's own kernels use OpenMP and the two runtimes oversubscribe the cores (docs: shared/FACTS.md).
# Defines OpenBLAS_FOUND, OpenBLAS_INCLUDE_DIR, OpenBLAS_LIBRARY, OpenBLAS_IS_OPENMP and the target OpenBLAS::OpenBLAS.
set(_lt_blas_omp_lib)
set(_lt_blas_omp_inc)
if(CMAKE_LIBRARY_ARCHITECTURE)
  set(_lt_blas_omp_lib /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp)
  set(_lt_blas_omp_inc /usr/include/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp)
endif()

# First the OpenMP flavour's own directories, then anything on the default paths.
find_path(OpenBLAS_INCLUDE_DIR cblas.h PATHS ${_lt_blas_omp_inc} NO_DEFAULT_PATH)
find_path(OpenBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas-openmp openblas)
find_library(OpenBLAS_LIBRARY NAMES openblas PATHS ${_lt_blas_omp_lib} NO_DEFAULT_PATH)
find_library(OpenBLAS_LIBRARY NAMES openblaso openblas)
mark_as_advanced(OpenBLAS_INCLUDE_DIR OpenBLAS_LIBRARY)

set(OpenBLAS_IS_OPENMP FALSE)
if(OpenBLAS_LIBRARY)
  file(REAL_PATH "${OpenBLAS_LIBRARY}" _lt_blas_real)
  if(_lt_blas_real MATCHES "openmp|openblaso")
    set(OpenBLAS_IS_OPENMP TRUE)
  endif()
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(OpenBLAS REQUIRED_VARS OpenBLAS_LIBRARY OpenBLAS_INCLUDE_DIR)

if(OpenBLAS_FOUND AND NOT TARGET OpenBLAS::OpenBLAS)
  add_library(OpenBLAS::OpenBLAS UNKNOWN IMPORTED)
  set_target_properties(OpenBLAS::OpenBLAS PROPERTIES IMPORTED_LOCATION "${OpenBLAS_LIBRARY}"
                                                      INTERFACE_INCLUDE_DIRECTORIES "${OpenBLAS_INCLUDE_DIR}")
endif()
