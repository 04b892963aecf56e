# Optional parts of libtrain (CUDA, MPI, NCCL, HDF5) and the summary printed at the end of configure.
# A part defaults to ON when its dependency is found. A value the user chose (-DLT_MPI=ON/OFF) is kept; a value
# chosen by detection follows detection on the next configure, so installing a package later turns the part on.

# lt_feature(<option> <doc> <found> <detail> <missing>): declares the cache option and records a summary line.
#   found:   whether the dependency is usable; detail: what was found (shown when ON);
#   missing: what to install (shown when OFF, and in the error when the option was set ON by hand).
function(lt_feature name doc found detail missing)
  if(found)
    set(found ON)
  else()
    set(found OFF)
  endif()
  set(auto _${name}_AUTO)
  if(NOT DEFINED CACHE{${name}} OR (DEFINED CACHE{${auto}} AND "$CACHE{${name}}" STREQUAL "$CACHE{${auto}}"))
    set(${name} ${found} CACHE BOOL "${doc}" FORCE)
    set(${auto} ${found} CACHE INTERNAL "value of ${name} last chosen by detection")
    set(by "detected")
  else()
    unset(${auto} CACHE)
    set(by "-D${name}=$CACHE{${name}}")
  endif()

  if($CACHE{${name}} AND NOT found)
    message(FATAL_ERROR "${name} is ON but ${missing}.\n"
                        "Install it, or configure with -D${name}=OFF.")
  endif()
  if($CACHE{${name}})
    lt_summary_switch("${name}" ON "${detail} (${by})")
  elseif(found)
    lt_summary_switch("${name}" OFF "${by}, although found: ${detail}")
  else()
    lt_summary_switch("${name}" OFF "${missing}")
  endif()
endfunction()

# lt_summary_switch(<label> <on/off> <why>): a summary line for something that is either ON or OFF.
function(lt_summary_switch label value why)
  if(value)
    lt_summary("${label}" "ON   ${why}")
  else()
    lt_summary("${label}" "OFF  ${why}")
  endif()
endfunction()

# lt_summary(<label> <text>): one line of the configure summary (no semicolons in text: CMake lists use them).
function(lt_summary label text)
  string(LENGTH "${label}" len)
  math(EXPR pad "14 - ${len}")
  if(pad LESS 1)
    set(pad 1)
  endif()
  string(REPEAT " " ${pad} spaces)
  set_property(GLOBAL APPEND PROPERTY LT_SUMMARY_LINES "  ${label}${spaces}${text}")
endfunction()

function(lt_print_summary)
  get_property(lines GLOBAL PROPERTY LT_SUMMARY_LINES)
  message(STATUS "")
  message(STATUS "libtrain ${PROJECT_VERSION} configuration summary")
  foreach(line IN LISTS lines)
    message(STATUS "${line}")
  endforeach()
  message(STATUS "")
endfunction()
