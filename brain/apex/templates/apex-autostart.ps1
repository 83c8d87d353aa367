# Starts brain's LiteLLM proxy on Apex (Windows), and registers that as a scheduled task.
# Written by `brain apex render` (brain @@VERSION@@). Keep it next to docker-compose.yml and .env.
#
#   Register the task (once, from an elevated PowerShell in this folder):
#     powershell -NoProfile -ExecutionPolicy Bypass -File .\apex-autostart.ps1 -Register
#   Remove it:    ... -File .\apex-autostart.ps1 -Unregister
#   Start now:    ... -File .\apex-autostart.ps1          (what the task runs at logon)
#
# The task runs at your logon, because Docker Desktop starts with your session. It waits for
# Docker and for Tailscale's address (the proxy binds to it), then runs `docker compose up -d`.
# Its log is apex-autostart.log in this folder.
[CmdletBinding()]
param(
    [switch]$Register,
    [switch]$Unregister,
    [int]$WaitSeconds = 600
)

$ErrorActionPreference = 'Stop'
$TaskName = 'brain-apex-litellm'
$Here = Split-Path -Parent $MyInvocation.MyCommand.Path
$Log = Join-Path $Here 'apex-autostart.log'

function Write-Log([string]$Message) {
    $line = '{0:yyyy-MM-dd HH:mm:ss} {1}' -f (Get-Date), $Message
    Add-Content -Path $Log -Value $line
    Write-Host $line
}

if ($Register) {
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' `
        -Argument ('-NoProfile -WindowStyle Hidden -ExecutionPolicy Bypass -File "{0}"' -f $MyInvocation.MyCommand.Path) `
        -WorkingDirectory $Here
    $trigger = New-ScheduledTaskTrigger -AtLogOn -User "$env:USERDOMAIN\$env:USERNAME"
    $settings = New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries `
        -StartWhenAvailable -ExecutionTimeLimit (New-TimeSpan -Minutes 30) `
        -RestartCount 3 -RestartInterval (New-TimeSpan -Minutes 5)
    Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger $trigger -Settings $settings `
        -Description 'Starts the LiteLLM proxy for brain (docker compose up -d) at logon.' -Force | Out-Null
    Write-Host "Registered the scheduled task '$TaskName' (runs at logon)."
    Write-Host "Next: Start-ScheduledTask -TaskName $TaskName   (or log off and on), then from the laptop: brain apex check"
    exit 0
}

if ($Unregister) {
    Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false
    Write-Host "Removed the scheduled task '$TaskName'. The proxy keeps running until: docker compose down"
    exit 0
}

# Native commands below write progress to stderr; in Windows PowerShell 5.1 that must not stop
# the script, so they run through cmd.exe, which hands back plain text.
$ErrorActionPreference = 'Continue'
Set-Location $Here
if (-not (Test-Path (Join-Path $Here '.env'))) {
    Write-Log 'No .env here: copy .env.example to .env and fill it in.'
    exit 1
}

$deadline = (Get-Date).AddSeconds($WaitSeconds)
Write-Log 'Waiting for Docker...'
while ($true) {
    cmd /c "docker info >nul 2>&1"
    if ($LASTEXITCODE -eq 0) { break }
    if ((Get-Date) -gt $deadline) {
        Write-Log "Docker did not answer within $WaitSeconds s. Is Docker Desktop set to start when you sign in?"
        exit 1
    }
    Start-Sleep -Seconds 5
}

Write-Log 'Waiting for a Tailscale address...'
$want = ''
foreach ($line in Get-Content (Join-Path $Here '.env')) {
    if ($line -match '^\s*@@TAILSCALE_ENV@@\s*=\s*(\S+)') { $want = $Matches[1] }
}
while ($true) {
    $ip = ''
    $ip = (cmd /c "tailscale ip -4 2>nul" | Select-Object -First 1)
    if ($ip) { $ip = $ip.Trim() }
    if ($ip -and ($want -eq '' -or $ip -eq $want)) { break }
    if ((Get-Date) -gt $deadline) {
        Write-Log "Tailscale has no address (or not @@TAILSCALE_ENV@@=$want from .env) after $WaitSeconds s."
        exit 1
    }
    Start-Sleep -Seconds 5
}

Write-Log "Starting the proxy on ${ip}:@@PORT@@ ..."
$output = cmd /c "docker compose up -d --remove-orphans 2>&1"
$code = $LASTEXITCODE
foreach ($line in $output) { Write-Log "  $line" }
if ($code -ne 0) {
    Write-Log "docker compose up failed (exit $code); see the lines above."
    exit $code
}
Write-Log 'Started. Check from the laptop: brain apex check'
