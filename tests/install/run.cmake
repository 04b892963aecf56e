#The install checks, run by CTest as `cmake - DLT_MODE = < test>... - P run.cmake` (arguments set in CMakeLists.txt):
#install_tree :         `cmake-- install` the build tree into LT_PREFIX and check that every part arrived;
#install_find_package : configure, build and run tests / install(main.cpp) with find_package(libtrain);
#install_pkg_config : compile and run tests / install / main.c with `pkg - config-- cflags-- libs libtrain`.
cmake_minimum_required(VERSION 3.25)

#run(<what> COMMAND...) : runs a command, echoing it, and fails the test on a non - zero exit.
function(run what)
  string(REPLACE ";" " " shown "${ARGN}")
  message(STATUS "${what}: ${shown}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}): ${shown}")
  endif()
endfunction()

set(san_flags)
if(LT_SANITIZE)
  set(san_flags -fsanitize=address,undefined -fno-omit-frame-pointer)
endif()

if(LT_MODE STREQUAL "install_tree")
  file(REMOVE_RECURSE ${LT_PREFIX})
  run("install" ${CMAKE_COMMAND} --install ${LT_BINARY_DIR} --prefix ${LT_PREFIX})
  set(lib ${LT_PREFIX}/${LT_LIBDIR})
  foreach(f include/libtrain/libtrain.h ${LT_LIBDIR}/libtrain.so ${LT_LIBDIR}/libtrain.so.${LT_VERSION}
          ${LT_LIBDIR}/cmake/libtrain/libtrainConfig.cmake ${LT_LIBDIR}/cmake/libtrain/libtrainConfigVersion.cmake
          ${LT_LIBDIR}/cmake/libtrain/libtrainTargets.cmake ${LT_LIBDIR}/pkgconfig/libtrain.pc)
    if(NOT EXISTS ${LT_PREFIX}/${f})
      message(FATAL_ERROR "not installed: ${LT_PREFIX}/${f}")
    endif()
  endforeach()
  file(GLOB public_headers RELATIVE ${LT_SOURCE_DIR}/include ${LT_SOURCE_DIR}/include/libtrain/*.h)
  foreach(h ${public_headers})
    if(NOT EXISTS ${LT_PREFIX}/include/${h})
      message(FATAL_ERROR "public header not installed: ${h}")
    endif()
  endforeach()
  # The SONAME link (libtrain.so.<abi>) is the name programs load; it must exist and point at the library.
  file(GLOB sonames ${lib}/libtrain.so.[0-9])
  if(NOT sonames)
    message(FATAL_ERROR "no SONAME link libtrain.so.<abi> in ${lib}")
  endif()
  message(STATUS "installed into ${LT_PREFIX}: headers, ${sonames}, CMake package and libtrain.pc")

elseif(LT_MODE STREQUAL "install_find_package")
  set(build ${LT_BINARY_DIR}/install-test-build)
  file(REMOVE_RECURSE ${build})
  string(REPLACE ";" " " san "${san_flags}")
  run("configure" ${CMAKE_COMMAND} -S ${LT_SOURCE_DIR}/tests/install -B ${build} -G ${LT_GENERATOR}
      -DCMAKE_PREFIX_PATH=${LT_PREFIX} -DCMAKE_BUILD_TYPE=${LT_BUILD_TYPE} -DCMAKE_CXX_COMPILER=${LT_CXX_COMPILER}
      -DCMAKE_CXX_FLAGS=${san} -DCMAKE_EXE_LINKER_FLAGS=${san} -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON)
  # It must have used the scratch install, not the build tree or a system copy.
  file(STRINGS ${build}/CMakeCache.txt found_dir REGEX "^libtrain_DIR:")
  string(FIND "${found_dir}" "${LT_PREFIX}/" at)
  if(NOT at GREATER -1)
    message(FATAL_ERROR "find_package(libtrain) did not use ${LT_PREFIX}: ${found_dir}")
  endif()
  run("build" ${CMAKE_COMMAND} --build ${build})
  run("run" ${build}/install_test)

elseif(LT_MODE STREQUAL "install_pkg_config")
  set(ENV{PKG_CONFIG_PATH} ${LT_PREFIX}/${LT_LIBDIR}/pkgconfig)
  execute_process(COMMAND ${LT_PKG_CONFIG} --cflags --libs libtrain OUTPUT_VARIABLE flags RESULT_VARIABLE rc
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND ${LT_PKG_CONFIG} --modversion libtrain OUTPUT_VARIABLE version
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  message(STATUS "pkg-config --cflags --libs libtrain: ${flags} (version ${version})")
  if(NOT rc EQUAL 0 OR NOT version STREQUAL LT_VERSION)
    message(FATAL_ERROR "pkg-config cannot use ${LT_PREFIX}/${LT_LIBDIR}/pkgconfig/libtrain.pc (version '${version}')")
  endif()
  separate_arguments(flags UNIX_COMMAND "${flags}")
  set(exe ${LT_BINARY_DIR}/install-test-pkg-config)
  run("compile" ${LT_C_COMPILER} -std=c11 -Wall -Wextra -Wpedantic -Werror ${san_flags}
      "-DLT_EXPECTED_VERSION=\"${version}\"" ${LT_SOURCE_DIR}/tests/install/main.c -o ${exe} ${flags} -lm)
  set(ENV{LD_LIBRARY_PATH} ${LT_PREFIX}/${LT_LIBDIR})
  run("run" ${exe})

else()
  message(FATAL_ERROR "unknown LT_MODE '${LT_MODE}'")
endif()
